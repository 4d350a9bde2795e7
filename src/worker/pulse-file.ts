// File operations of the worker strategy, the JavaScript twin of
// native/pulse_file.cc: same steps, same errno and FileOp on failure. None
// follows a symlink at the final path component.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FILE_OPS, type FileOpName } from '../native/loader';

/** errno 0 means success; `op` indexes FILE_OPS, as the addon reports it. */
export interface FileResult {
  err: number;
  op: number;
}

export const OK: FileResult = { err: 0, op: 0 };

const op = (name: FileOpName) => FILE_OPS.indexOf(name);

/** The positive errno of a failed fs call (Node reports libuv's negative one). */
export function errnoOf(error: unknown): number {
  const e = error as NodeJS.ErrnoException;
  const named = typeof e?.code === 'string' ? (os.constants.errno as Record<string, number>)[e.code] : undefined;
  if (named !== undefined) return named;
  if (typeof e?.errno === 'number' && e.errno !== 0) return Math.abs(e.errno);
  return os.constants.errno.EIO;
}

function fail(error: unknown, name: FileOpName): FileResult {
  return { err: errnoOf(error), op: op(name) };
}

/** Creates the missing parents of `file`, mode 0755 (minus umask), from the root down. */
export function makeParents(file: string): FileResult {
  const dir = path.dirname(file);
  for (let pos = 1; pos <= dir.length; pos++) {
    if (pos !== dir.length && dir[pos] !== '/') continue;
    try {
      fs.mkdirSync(dir.slice(0, pos), 0o755);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return fail(error, 'mkdir');
    }
  }
  return OK;
}

/** What inspectTarget found: a fault, or nothing in the way (`missing` when nothing is there). */
export interface Inspection extends FileResult {
  missing: boolean;
}

/**
 * ELOOP for a symlink (dangling or not), EISDIR for a directory, not-regular
 * for anything else; a missing file is fine and sets `missing`. One lstat,
 * never following a link.
 */
export function inspectTarget(file: string): Inspection {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { ...OK, missing: true };
    return { ...fail(error, 'inspect'), missing: false };
  }
  if (st.isSymbolicLink()) return { err: os.constants.errno.ELOOP, op: op('inspect'), missing: false };
  if (st.isDirectory()) return { err: os.constants.errno.EISDIR, op: op('inspect'), missing: false };
  if (!st.isFile()) return { err: os.constants.errno.EINVAL, op: op('not-regular'), missing: false };
  return { ...OK, missing: false };
}

/** The wall-clock mtime (ms) of what is at `file`, not following a link; 0 when none or unreadable. */
export function mtimeMs(file: string): number {
  try {
    return fs.lstatSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * The mtime for a record that is not a beat: the pulse's last beat, or the
 * file's own mtime when newer (other processes beat a shared file: a record
 * written here must not make their beats look old).
 */
/**
 * File times go in as seconds in a double. Node's libuv truncates them to
 * whole microseconds; Bun and Deno keep nanoseconds. So that a time read
 * back and set again comes out unchanged under each, the time set is the
 * microsecond nearest `ms` plus a quarter: truncation gives that microsecond,
 * nanoseconds keep the quarter, and either reads back to it.
 */
function utimeSeconds(ms: number): number {
  return (Math.round(ms * 1000) + 0.25) / 1e6;
}

export function keptMtimeMs(file: string, lastBeatMs: number): number {
  const current = mtimeMs(file);
  return current > lastBeatMs ? current : lastBeatMs;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
// libuv adds O_CLOEXEC to every open.
const TMP_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

/**
 * Replaces the content of `file` atomically: writes `tmp` (created
 * exclusively, never through a link, mode 0644 minus umask), sets its atime
 * and mtime to `mtimeMs` (wall clock), then renames it over `file`.
 */
export function writeRecord(file: string, tmp: string, content: string, mtimeMs: number): FileResult {
  let fd: number;
  try {
    fd = openTmp(tmp);
  } catch (error) {
    return fail(error, 'write');
  }
  let result = OK;
  try {
    const bytes = Buffer.from(content);
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done);
    const seconds = utimeSeconds(mtimeMs);
    fs.futimesSync(fd, seconds, seconds);
  } catch (error) {
    result = fail(error, 'write');
  }
  try {
    fs.closeSync(fd);
  } catch (error) {
    if (result.err === 0) result = fail(error, 'write');
  }
  if (result.err === 0) {
    try {
      fs.renameSync(tmp, file);
    } catch (error) {
      result = fail(error, 'rename');
    }
  }
  if (result.err !== 0) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // Nothing to clean up.
    }
  }
  return result;
}

function openTmp(tmp: string): number {
  try {
    return fs.openSync(tmp, TMP_FLAGS, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Left behind by a pulse that was cut short (a terminated worker, or a
    // crashed process that had our pid): ours to replace.
    fs.unlinkSync(tmp);
    return fs.openSync(tmp, TMP_FLAGS, 0o644);
  }
}

/** The beat: sets the times of whatever is at `file` to `wallMs` without following a link. */
export function touch(file: string, wallMs: number): FileResult {
  const seconds = utimeSeconds(wallMs);
  try {
    fs.lutimesSync(file, seconds, seconds);
  } catch (error) {
    return fail(error, 'touch');
  }
  return OK;
}

export function remove(file: string): FileResult {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return fail(error, 'remove');
  }
  return OK;
}

/** realpath of the parent joined with the base name: one key per file however it is spelled. */
export function canonicalKey(file: string): { key: string } | { failure: FileResult } {
  try {
    return { key: path.join(fs.realpathSync.native(path.dirname(file)), path.basename(file)) };
  } catch (error) {
    return { failure: fail(error, 'resolve') };
  }
}

/** ".<name>.<pid>.<thread>.<n>.tmp" beside the file: unique per writer in this process. */
export function tmpPath(file: string, threadId: number, n: number): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${threadId}.${n}.tmp`);
}
