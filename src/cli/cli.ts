import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveOptions, checkFile, parseSeconds, ENV, DEFAULTS } from '../contract/options';
import { activeLine, frameLine, nativeFrameLine, outsideJsText, threadLine, userFrames, waitingLine, type ActiveLabel, type LastStall, type NativeFrame, type PreviousRun, type StackFrame, type ThreadView, type WaitingFor } from '../diagnosis/stall-text';
import { probe, seconds, type ProbeResult, type PulseRecord } from './probe';
import { isTemplated, templateToGlob } from '../contract/template';

// `celery-pulse-native check|status`: a probe runs it every few seconds, so it
// loads only options (env parsing) and the probe, never the addon or the index.

export const USAGE =
  'usage: celery-pulse-native check [--file F]... [FILE|GLOB]... [--all|--any] [--max-age S] [--json]\n' +
  '       celery-pulse-native status [--file F]... [FILE|GLOB]... [--all|--any] [--max-age S]\n';

const HELP =
  USAGE +
  '\n' +
  'check   exit 0 when the healthcheck file is fresh (mtime age <= max-age),\n' +
  '        1 when it is stale, gone, missing or not a regular file, 2 on a usage error.\n' +
  'status  the file\'s record and age, for a person (same exit codes).\n' +
  '\n' +
  '--file F     the healthcheck file (default: $CELERY_PULSE_HEALTHCHECK_FILE,\n' +
  '             else /tmp/celery_healthcheck); may be given again, or files\n' +
  '             and globs (* and ? in the file name) follow the command\n' +
  '--all        several files: every one not gone must be fresh (the default)\n' +
  '--any        several files: one fresh file is enough\n' +
  '--max-age S  seconds (default: 2 x $CELERY_PULSE_HEARTBEAT_INTERVAL, else 120)\n' +
  '--json       print one JSON object instead of lines\n' +
  '\n' +
  'A path with {pid}, {threadId}, {hostname} or {workerId} stands for every\n' +
  'file the pulses would write. A file that is not fresh and whose recorded\n' +
  'process no longer runs on this host is gone; --all leaves gone files out.\n';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

class UsageError extends Error {}

interface Args {
  command: 'check' | 'status';
  /** --file values and positional files or globs, in order. */
  files: string[];
  maxAge?: string;
  json: boolean;
  mode?: 'all' | 'any';
}

function parseArgs(argv: readonly string[]): Args | 'help' {
  if (argv.length === 0) throw new UsageError('a command is required');
  if (argv.length === 1 && ['-h', '--help', 'help'].includes(argv[0])) return 'help';
  const [command, ...rest] = argv;
  if (command !== 'check' && command !== 'status') throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const args: Args = { command, files: [], json: false };
  const flags = ['--file', '--max-age', '--all', '--any', ...(command === 'check' ? ['--json'] : [])];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '-h' || arg === '--help') return 'help';
    if (!arg.startsWith('-')) {
      args.files.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!flags.includes(name)) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
    if (name === '--json' || name === '--all' || name === '--any') {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      if (name === '--json') {
        args.json = true;
      } else {
        const mode = name === '--all' ? 'all' : 'any';
        if (args.mode !== undefined && args.mode !== mode) throw new UsageError('--all and --any exclude each other');
        args.mode = mode;
      }
      continue;
    }
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < rest.length) value = rest[++i];
    else throw new UsageError(`${name} needs a value`);
    if (name === '--file') {
      args.files.push(value);
      continue;
    }
    if (args.maxAge !== undefined) throw new UsageError(`${name} given twice`);
    args.maxAge = value;
  }
  return args;
}

type Source = { kind: 'option' | 'env'; name: string };

const WILDCARD = /[*?]/;

/** A glob's file-name part as a RegExp: * and ? never match a leading dot, as in the shell. */
function nameMatcher(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${glob.startsWith('.') ? '' : '(?!\\.)'}${body}$`);
}

/** The existing files a glob names, sorted; wildcards are allowed in the file name only. */
function expandGlob(glob: string): string[] {
  const dir = path.dirname(glob);
  if (WILDCARD.test(dir)) throw new UsageError(`wildcards are allowed in the file name only, not in ${JSON.stringify(dir)}`);
  const matcher = nameMatcher(path.basename(glob));
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((name) => matcher.test(name)).sort().map((name) => path.join(dir, name));
}

interface Target {
  /** As given (a glob, a template or a path), for messages. */
  given: string;
  /** The files it names now. */
  files: string[];
  glob: boolean;
}

/** One file, or a glob (a template stands for the files its pulses would write). */
function target(value: string, source: Source): Target {
  const templated = isTemplated(value);
  const pattern = templated ? templateToGlob(value, source) : value;
  // Same parsing and coded errors as start(): a probe and the worker sharing
  // one environment can never disagree on the file.
  const file = checkFile(pattern, source);
  // A literal "*" in an env var is a file name; on the command line, a glob.
  if (WILDCARD.test(pattern) && (templated || source.kind === 'option')) {
    return { given: value, files: expandGlob(file), glob: true };
  }
  return { given: value, files: [file], glob: false };
}

/** The files and threshold: flags first, then the library's env vars and defaults. */
function settings(args: Args): { targets: Target[]; maxAgeMs: number } {
  const resolved = resolveOptions({}, process.env);
  const targets =
    args.files.length > 0
      ? args.files.map((value) => target(value, { kind: 'option', name: '--file' }))
      : [
          process.env[ENV.file] !== undefined
            ? target(process.env[ENV.file] as string, { kind: 'env', name: ENV.file })
            : target(DEFAULTS.file, { kind: 'option', name: '--file' }),
        ];
  const maxAge =
    args.maxAge !== undefined
      ? parseSeconds(args.maxAge, { kind: 'option', name: '--max-age' }, false)
      : 2 * resolved.interval;
  return { targets, maxAgeMs: Math.round(maxAge * 1000) };
}

function ageText(r: ProbeResult): string {
  if (r.ageMs === null) return '';
  if (r.ageMs < 0) return `age ${seconds(r.ageMs)} (mtime in the future) <= max-age ${seconds(r.maxAgeMs)}`;
  return `age ${seconds(r.ageMs)} ${r.ok ? '<=' : '>'} max-age ${seconds(r.maxAgeMs)}`;
}

/** The one line `check` prints: verdict, file, age against threshold, and why. */
export function verdictLine(r: ProbeResult): string {
  const age = ageText(r);
  return `${verdictWord(r)}: ${r.file}${age ? ` ${age}` : ''}: ${r.reason}\n`;
}

function verdictWord(r: ProbeResult): string {
  if (r.ok) return 'fresh';
  if (r.state === 'missing' || r.state === 'gone') return r.state;
  return r.ageMs === null ? 'unusable' : 'stale';
}

function statusText(r: ProbeResult, now: number): string {
  const age = ageText(r);
  const rows: [string, string][] = [
    ['file', r.file],
    ['verdict', `${verdictWord(r)}${age ? `, ${age}` : ''}`],
    ['why', r.reason],
  ];
  const rec = r.record;
  if (r.mtime !== null) rows.push(['mtime', rec ? `${r.mtime} (the last beat)` : r.mtime]);
  if (rec) {
    const when = (iso: unknown) => {
      if (typeof iso !== 'string') return 'never';
      const t = Date.parse(iso);
      return Number.isNaN(t) ? iso : `${iso} (${seconds(now - t)} ago)`;
    };
    rows.push(['state', `${String(rec.state)}: ${String(rec.message ?? '')}`]);
    if (rec.stalledSince !== undefined) rows.push(['stalled', `since ${when(rec.stalledSince)}`]);
    if (rec.state === 'stalled' && typeof rec.loopSilentMs === 'number') {
      rows.push(['loop silent', `${seconds(rec.loopSilentMs)} when the record was written`]);
    }
    rows.push(...diagnosisRows(rec, when));
    rows.push(['written', when(rec.updatedAt)]);
    rows.push(['started', when(rec.startedAt)]);
    const host = typeof rec.hostname === 'string' ? ` on ${rec.hostname}` : '';
    const thread = `thread ${String(rec.threadId)}, strategy ${String(rec.strategy)}`;
    rows.push(['process', `pid ${String(rec.pid)}${host}, ${thread}`]);
    rows.push(['settings', `interval ${String(rec.interval)} s, maxStall ${String(rec.maxStall)} s`]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}\n`).join('');
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A stack as Node prints one, a frame a line, with source-mapped positions; the reason when there is none. */
function stackLines(stack: unknown, unavailable: unknown): string[] {
  if (Array.isArray(stack) && stack.length > 0) return userFrames(stack as StackFrame[]).map((f) => frameLine(f) + mappedPosition(f));
  return [`none: ${typeof unavailable === 'string' ? unavailable : 'not captured'}`];
}

type SourceMapLike = { findEntry(line: number, column: number): { originalSource?: string; originalLine?: number; originalColumn?: number } };
const sourceMaps = new Map<string, { map: SourceMapLike; dir: string } | null>();

/** The source map a generated file names (a local .map file or an inline one); null when none. */
function sourceMapOf(file: string): { map: SourceMapLike; dir: string } | null {
  if (sourceMaps.has(file)) return sourceMaps.get(file) ?? null;
  let found: { map: SourceMapLike; dir: string } | null = null;
  try {
    const code = fs.readFileSync(file, 'utf8');
    const url = /\/\/[#@] sourceMappingURL=(\S+)\s*$/.exec(code)?.[1];
    if (url) {
      const inline = /^data:application\/json(?:;charset=[\w-]+)?;base64,(.*)$/.exec(url);
      const mapFile = inline ? file : path.resolve(path.dirname(file), decodeURIComponent(url));
      const payload = JSON.parse(inline ? Buffer.from(inline[1], 'base64').toString('utf8') : fs.readFileSync(mapFile, 'utf8'));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { SourceMap } = require('node:module') as { SourceMap: new (payload: unknown) => SourceMapLike };
      const root = typeof payload.sourceRoot === 'string' ? payload.sourceRoot : '';
      found = { map: new SourceMap(payload), dir: path.resolve(path.dirname(mapFile), root) };
    }
  } catch {
    found = null; // no readable file or map: the generated position stands alone
  }
  sourceMaps.set(file, found);
  return found;
}

/** " [src/tasks.ts:40:5]": where a frame's local source map puts it; "" when there is none. */
function mappedPosition(frame: StackFrame): string {
  if (typeof frame.file !== 'string' || !path.isAbsolute(frame.file) || !(frame.line > 0)) return '';
  const found = sourceMapOf(frame.file);
  if (!found) return '';
  const entry = found.map.findEntry(frame.line - 1, Math.max(0, frame.column - 1));
  if (typeof entry.originalSource !== 'string' || typeof entry.originalLine !== 'number') return '';
  const source = entry.originalSource.startsWith('file://')
    ? new URL(entry.originalSource).pathname
    : path.resolve(found.dir, entry.originalSource);
  const shown = path.relative(process.cwd(), source);
  const where = shown.startsWith('..') ? source : shown;
  return ` [${where}:${entry.originalLine + 1}:${(entry.originalColumn ?? 0) + 1}]`;
}

/** The stall diagnosis of a record, its lastStall and its previous run, as status rows. */
function diagnosisRows(rec: PulseRecord, when: (iso: unknown) => string): [string, string][] {
  const rows: [string, string][] = [];
  if ((rec.state === 'stalled' || rec.state === 'exited') && (rec.thread !== undefined || rec.stack !== undefined)) {
    stackLines(rec.stack, rec.stackUnavailable).forEach((line, i) => rows.push([i === 0 ? 'stack' : '', line]));
    if (typeof rec.stackAt === 'string') rows.push(['stack at', when(rec.stackAt)]);
    if (Array.isArray(rec.nativeStack) && rec.nativeStack.length > 0) {
      (rec.nativeStack as NativeFrame[]).forEach((f, i) => rows.push([i === 0 ? 'native stack' : '', `in ${nativeFrameLine(f)}`]));
    } else if (typeof rec.nativeStackUnavailable === 'string') {
      rows.push(['native stack', `none: ${rec.nativeStackUnavailable}`]);
    }
    if (isObject(rec.waitingFor)) rows.push(['waiting for', waitingLine(rec.waitingFor as unknown as WaitingFor)]);
    if (isObject(rec.thread)) rows.push(['thread', threadLine(rec.thread as unknown as ThreadView)]);
    if (Array.isArray(rec.active)) {
      const active = rec.active as ActiveLabel[];
      if (active.length === 0) rows.push(['active', 'none']);
      active.forEach((a, i) => rows.push([i === 0 ? 'active' : '', `${a.label} (since ${when(a.since)})`]));
    }
  }
  if (isObject(rec.expectedStall)) {
    const e = rec.expectedStall as { seconds?: unknown; reason?: unknown; until?: unknown };
    const reason = typeof e.reason === 'string' ? ` (${e.reason})` : '';
    rows.push(['expecting', `a stall of up to ${String(e.seconds)} s${reason} until ${when(e.until)}`]);
  }
  if (isObject(rec.lastStall)) {
    const l = rec.lastStall as unknown as LastStall;
    const outside = outsideJsText(l);
    const taken = l.stackTakenAt === 'end' ? ' (taken as the stall ended)' : '';
    const frames = Array.isArray(l.stack) ? userFrames(l.stack) : [];
    const top = frames.length > 0 ? `; ${frameLine(frames[0])}${taken}` : outside ? `; ${outside}` : '';
    rows.push(['last stall', `since ${when(l.since)}, lasted ${seconds(Number(l.durationMs))}${top}`]);
    if (isObject(l.thread)) rows.push(['', `thread ${threadLine(l.thread)}; active: ${activeLine(Array.isArray(l.active) ? l.active : [])}`]);
  }
  if (isObject(rec.previous)) {
    const p = rec.previous as unknown as PreviousRun;
    const since = typeof p.stalledSince === 'string' ? ` since ${p.stalledSince}` : '';
    rows.push(['previous', `pid ${String(p.pid)} ${String(p.state)}${since}, last written ${when(p.updatedAt)}`]);
    if (Array.isArray(p.stack)) userFrames(p.stack).forEach((f) => rows.push(['', frameLine(f)]));
    if (isObject(p.thread)) rows.push(['', `thread ${threadLine(p.thread)}; active: ${activeLine(Array.isArray(p.active) ? p.active : [])}`]);
  }
  return rows;
}

/** Runs the CLI; returns the exit code (0 fresh, 1 stale or missing, 2 usage). */
export function main(argv: readonly string[], io: Output = stdio): number {
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`celery-pulse-native: ${error.message}\n${USAGE}`);
    return 2;
  }
  if (args === 'help') {
    io.out(HELP);
    return 0;
  }
  let targets: Target[];
  let maxAgeMs: number;
  try {
    ({ targets, maxAgeMs } = settings(args));
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`celery-pulse-native: ${error.message}\n${USAGE}`);
      return 2;
    }
    const coded = error as Error & { code?: string };
    if (typeof coded.code !== 'string' || !coded.code.startsWith('ERR_PULSE_')) throw error;
    // A bad flag is a usage error; a bad env var is the environment's.
    io.err(`${coded.message} (${coded.code})\n${coded.code === 'ERR_PULSE_INVALID_OPTION' ? USAGE : ''}`);
    return 2;
  }
  const now = Date.now();
  // One plain file and no --all/--any: the single-file verdict, as always.
  if (targets.length === 1 && !targets[0].glob && args.mode === undefined) {
    const result = probe(targets[0].files[0], maxAgeMs, now);
    if (args.command === 'status') io.out(statusText(result, now));
    else if (args.json) io.out(`${JSON.stringify(result)}\n`);
    else io.out(verdictLine(result));
    return result.ok ? 0 : 1;
  }
  const verdict = judge(targets, maxAgeMs, now, args.mode ?? 'all');
  if (args.command === 'status') {
    io.out(verdict.results.map((r) => statusText(r, now)).join('\n'));
    if (verdict.results.length > 0) io.out('\n');
    io.out(verdict.summary);
  } else if (args.json) {
    const { results, summary, ...rest } = verdict;
    io.out(`${JSON.stringify({ ...rest, summary: summary.trimEnd(), files: results })}\n`);
  } else {
    io.out(verdict.results.map(verdictLine).join('') + verdict.summary);
  }
  return verdict.ok ? 0 : 1;
}

interface Verdict {
  ok: boolean;
  mode: 'all' | 'any';
  fresh: string[];
  stale: string[];
  gone: string[];
  results: ProbeResult[];
  /** The last line: the verdict, and which files made it. */
  summary: string;
}

/**
 * Several files. --all: every file not gone is fresh, and at least one is;
 * --any: at least one is fresh. Gone files (not fresh, their process no
 * longer runs here) are named but never fail --all: a worker that crashed and
 * was replaced must not fail the probe forever.
 */
function judge(targets: Target[], maxAgeMs: number, now: number, mode: 'all' | 'any'): Verdict {
  const files = [...new Set(targets.flatMap((t) => t.files))];
  const results = files.map((file) => probe(file, maxAgeMs, now));
  const names = (keep: (r: ProbeResult) => boolean) => results.filter(keep).map((r) => r.file);
  const fresh = names((r) => r.ok);
  const gone = names((r) => r.state === 'gone');
  const stale = names((r) => !r.ok && r.state !== 'gone');
  const empty = targets.filter((t) => t.glob && t.files.length === 0).map((t) => t.given);
  const ok = mode === 'all' ? stale.length === 0 && fresh.length > 0 : fresh.length > 0;
  const goneNote = gone.length > 0 ? `; ${gone.length} gone, left out: ${gone.join(', ')}` : '';
  let summary: string;
  if (files.length === 0) {
    summary = `missing: no file matches ${empty.join(', ')}\n`;
  } else if (mode === 'all') {
    summary = ok
      ? `fresh: ${gone.length > 0 ? `${fresh.length} of ${files.length}` : `all ${files.length}`} files (--all${goneNote})\n`
      : stale.length > 0
        ? `stale: ${stale.length} of ${files.length} files: ${stale.join(', ')} (--all${goneNote})\n`
        : `gone: every one of the ${files.length} files is gone (--all): ${gone.join(', ')}\n`;
  } else {
    summary = ok
      ? `fresh: ${fresh.length} of ${files.length} files (--any): ${fresh.join(', ')}\n`
      : `stale: none of the ${files.length} files is fresh (--any)\n`;
  }
  return { ok, mode, fresh, stale, gone, results, summary };
}
