import * as fs from 'node:fs';
import * as os from 'node:os';
import { activeLine, frameLine, outsideJsText, threadLine, userFrames, type ActiveLabel, type NativeFrame, type StackFrame, type ThreadView, type WaitingFor } from '../diagnosis/stall-text';

// The probe side of the file: how old it is and what its record says. Loaded by
// the CLI, so it needs nothing but node:fs and node:os (never the addon).

/**
 * What the probe found at the path. `running`, `stalled`, `unhealthy`,
 * `stopped`, `exited` (ended by exitOnStall) come from the record; `gone` is a file that is not fresh and whose
 * recorded process no longer runs on this host.
 */
export type ProbeState =
  | 'running'
  | 'stalled'
  | 'unhealthy'
  | 'stopped'
  | 'exited'
  | 'gone'
  | 'missing'
  | 'symlink'
  | 'not-regular'
  | 'unreadable'
  | 'no-record';

/** The JSON record the heartbeat thread writes (native/heartbeat.cc); every member optional here. */
export interface PulseRecord {
  state?: string;
  message?: string;
  updatedAt?: string;
  lastBeatAt?: string | null;
  stalledSince?: string;
  loopSilentMs?: number;
  pid?: number;
  threadId?: number;
  hostname?: string;
  startedAt?: string;
  file?: string;
  interval?: number;
  maxStall?: number | string;
  strategy?: string;
  stack?: StackFrame[] | null;
  stackUnavailable?: string;
  thread?: ThreadView;
  active?: ActiveLabel[];
  nativeStack?: NativeFrame[] | null;
  waitingFor?: WaitingFor | null;
  [key: string]: unknown;
}

export interface ProbeResult {
  /** True when the file is a regular file whose mtime age is <= maxAgeMs. */
  ok: boolean;
  file: string;
  /** now - mtime; null when there is no regular file. Negative when the mtime is in the future. */
  ageMs: number | null;
  maxAgeMs: number;
  mtime: string | null;
  state: ProbeState;
  /** One sentence for a person: what the file and its record say. */
  reason: string;
  record: PulseRecord | null;
}

// A record is a few hundred bytes; anything much larger is not one.
const MAX_RECORD_BYTES = 64 * 1024;

/** Seconds for people: "0.4 s", "12.0 s", "315 s (5.3 min)", "7200 s (2.0 h)". */
export function seconds(ms: number): string {
  const s = ms / 1000;
  const a = Math.abs(s);
  if (a < 100) return `${s.toFixed(1)} s`;
  if (a < 3600) return `${Math.round(s)} s (${(s / 60).toFixed(1)} min)`;
  if (a < 172800) return `${Math.round(s)} s (${(s / 3600).toFixed(1)} h)`;
  return `${Math.round(s)} s (${(s / 86400).toFixed(1)} days)`;
}

/** How long before `now` an ISO time was, for people; "" when it is not a time. */
function ago(iso: unknown, now: number): string {
  if (typeof iso !== 'string') return '';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : `${seconds(now - t)} ago`;
}

function fileKind(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Reads the record of a regular file without following a link: O_NOFOLLOW,
 * O_NONBLOCK (a FIFO swapped in cannot hang the probe) and the same inode as
 * the lstat. Returns null when there is no parsable record, or the errno code
 * when the file cannot be opened (its mtime still decides), or REPLACED when
 * another regular file was renamed over the path since the lstat.
 */
const REPLACED = Symbol('replaced');
function readRecord(file: string, stat: fs.Stats): PulseRecord | string | null | typeof REPLACED {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? 'EIO';
  }
  try {
    const again = fs.fstatSync(fd);
    if (!again.isFile()) return null;
    if (again.ino !== stat.ino || again.dev !== stat.dev) return REPLACED;
    const buffer = Buffer.alloc(Math.min(again.size, MAX_RECORD_BYTES + 1));
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    if (length > MAX_RECORD_BYTES) return null;
    const value: unknown = JSON.parse(buffer.subarray(0, length).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as PulseRecord) : null;
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Whether the record's process is known to be gone: it was written on this
 * host (same host name, or none recorded) and its pid no longer exists.
 */
function writerGone(record: PulseRecord): boolean {
  if (typeof record.pid !== 'number' || !Number.isInteger(record.pid) || record.pid <= 0) return false;
  if (typeof record.hostname === 'string' && record.hostname !== os.hostname()) return false;
  try {
    process.kill(record.pid, 0);
    return false;
  } catch (error) {
    // Deno without --allow-run: the verdict cannot be had, so say so (bin/).
    if ((error as Error).name === 'NotCapable') throw error;
    return (error as NodeJS.ErrnoException).code === 'ESRCH'; // EPERM: it exists
  }
}

/** Who wrote the record, and whether that process still exists here. */
function writer(record: PulseRecord): string {
  if (typeof record.pid !== 'number') return '';
  const text = `pid ${record.pid}`;
  if (typeof record.hostname === 'string' && record.hostname !== os.hostname()) {
    return `${text} on ${record.hostname}`;
  }
  return writerGone(record) ? `${text}, no longer running` : text;
}

/**
 * " in crunch (/app/tasks.js:42:7)" for a record whose stack names the innermost frame; without
 * one, " waiting for child 4242: sleep 15" or " in sqlite3VdbeExec (better_sqlite3.node)"; "" otherwise.
 */
function innermost(record: PulseRecord): string {
  const top = Array.isArray(record.stack) ? userFrames(record.stack as StackFrame[])[0] : undefined;
  if (top && typeof top === 'object') return ` ${frameLine(top).replace(/^at /, 'in ')}`;
  const outside = outsideJsText(record);
  return outside ? ` ${outside}` : '';
}

/** "; thread running, 99.6% CPU; active: job x" from a stall record's diagnosis; "" without one. */
export function diagnosisText(record: { thread?: unknown; active?: unknown }): string {
  let out = '';
  if (record.thread !== null && typeof record.thread === 'object') out += `; thread ${threadLine(record.thread as ThreadView)}`;
  if (Array.isArray(record.active)) out += `; active: ${activeLine(record.active as ActiveLabel[])}`;
  return out;
}

function explain(
  ok: boolean,
  ageMs: number,
  maxAgeMs: number,
  record: PulseRecord | string | null,
  now: number,
): [ProbeState, string] {
  if (typeof record === 'string') return ['no-record', `the record cannot be read (${record}); the mtime alone decides`];
  if (record === null) {
    return ['no-record', 'the file holds no pulse record (it was not written by celery-pulse-native, or was emptied)'];
  }
  const by = writer(record);
  const paren = by ? ` (${by})` : '';
  const written = ago(record.updatedAt, now);
  switch (record.state) {
    case 'stalled': {
      const since = typeof record.stalledSince === 'string' ? `stalled since ${record.stalledSince}` : 'stalled';
      const silent =
        typeof record.loopSilentMs === 'number' ? `, event loop silent for ${seconds(record.loopSilentMs)}` : '';
      const when = written ? ` as of ${written}` : '';
      const tail = ok ? `; beats withheld, the file goes stale in ${seconds(maxAgeMs - ageMs)}` : '; beats withheld';
      return ['stalled', `${since}${silent}${innermost(record)}${when}${diagnosisText(record)}${tail}${paren}`];
    }
    case 'unhealthy': {
      // The message names the failing check and its error (native/heartbeat.cc).
      const message = typeof record.message === 'string' ? record.message : 'a health check fails; beats withheld';
      const when = written ? ` (as of ${written})` : '';
      const tail = ok ? `; the file goes stale in ${seconds(maxAgeMs - ageMs)}` : '';
      return ['unhealthy', `${message}${when}${tail}${paren}`];
    }
    case 'exited': {
      // exitOnStall ended the process: the message holds the stall's line.
      const message = typeof record.message === 'string' ? record.message : 'ended by exitOnStall';
      return ['exited', `${message}${diagnosisText(record)}${paren}`];
    }
    case 'stopped': {
      const message = typeof record.message === 'string' ? record.message : 'stopped';
      return ['stopped', `the pulse was ${message}${paren}`];
    }
    case 'running': {
      if (ok) {
        const note = typeof record.message === 'string' && record.message !== 'started' ? `: ${record.message}` : '';
        return ['running', `running${note}${paren}`];
      }
      // The record says running but no beat came: the thread could not write,
      // or the process was frozen (SIGSTOP) or killed without a chance to say so.
      if (by.endsWith('no longer running')) {
        return ['running', `the record says running, but its process is gone: it died without stopping its pulse${paren}`];
      }
      return [
        'running',
        `the record says running, but no beat for ${seconds(ageMs)}: ` +
          `the process was killed or frozen, or cannot write the file${paren}`,
      ];
    }
    default:
      return ['no-record', `the file holds no pulse record (state ${JSON.stringify(record.state)})`];
  }
}

/** Inspects the healthcheck file: fresh when its mtime age is <= maxAgeMs. Never follows a link. */
export function probe(file: string, maxAgeMs: number, now = Date.now()): ProbeResult {
  const result = (ok: boolean, state: ProbeState, reason: string, extra: Partial<ProbeResult> = {}): ProbeResult => ({
    ok,
    file,
    ageMs: null,
    maxAgeMs,
    mtime: null,
    state,
    reason,
    record: null,
    ...extra,
  });
  let stat: fs.Stats;
  let read: ReturnType<typeof readRecord>;
  // A pulse replaces its record by rename (a stall record, a recovery): one
  // that lands between the lstat and the open is read again, not taken for
  // a file without a record.
  for (let attempt = 1; ; attempt++) {
    try {
      stat = fs.lstatSync(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'EIO';
      if (code === 'ENOENT') {
        return result(false, 'missing', 'no such file: the pulse has not started, or was stopped with removeOnStop');
      }
      if (code === 'ENOTDIR') return result(false, 'missing', 'no such file: a parent in its path is not a directory');
      return result(false, 'unreadable', `cannot inspect the file (${code})`);
    }
    if (stat.isSymbolicLink()) {
      return result(false, 'symlink', 'the path is a symbolic link; the probe never follows links, nor does the pulse');
    }
    if (!stat.isFile()) return result(false, 'not-regular', `the path is ${fileKind(stat)}, not a regular file`);
    read = readRecord(file, stat);
    if (read !== REPLACED || attempt === 3) break;
  }
  const record = read === REPLACED ? null : read;

  const ageMs = Math.round(now - stat.mtimeMs);
  const ok = ageMs <= maxAgeMs;
  const [recordState, reason] = explain(ok, ageMs, maxAgeMs, record, now);
  const parsed = typeof record === 'string' ? null : record;
  // Not fresh, and written by a process that no longer exists here: gone,
  // which a check of several files tells apart from stale.
  const state: ProbeState = !ok && parsed !== null && writerGone(parsed) ? 'gone' : recordState;
  return result(ok, state, reason, { ageMs, mtime: stat.mtime.toISOString(), record: parsed });
}
