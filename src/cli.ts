import { resolveOptions, checkFile, parseSeconds } from './options';
import { probe, seconds, type ProbeResult } from './probe';

// `celery-pulse-native check|status`: a probe runs it every few seconds, so it
// loads only options (env parsing) and the probe, never the addon or the index.

export const USAGE =
  'usage: celery-pulse-native check [--file F] [--max-age S] [--json]\n' +
  '       celery-pulse-native status [--file F] [--max-age S]\n';

const HELP =
  USAGE +
  '\n' +
  'check   exit 0 when the healthcheck file is fresh (mtime age <= max-age),\n' +
  '        1 when it is stale, missing or not a regular file, 2 on a usage error.\n' +
  'status  the file\'s record and age, for a person (same exit codes).\n' +
  '\n' +
  '--file F     the healthcheck file (default: $CELERY_PULSE_HEALTHCHECK_FILE,\n' +
  '             else /tmp/celery_healthcheck)\n' +
  '--max-age S  seconds (default: 2 x $CELERY_PULSE_HEARTBEAT_INTERVAL, else 120)\n' +
  '--json       print one JSON object instead of a line\n';

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
  file?: string;
  maxAge?: string;
  json: boolean;
}

function parseArgs(argv: readonly string[]): Args | 'help' {
  if (argv.length === 0) throw new UsageError('a command is required');
  if (argv.length === 1 && ['-h', '--help', 'help'].includes(argv[0])) return 'help';
  const [command, ...rest] = argv;
  if (command !== 'check' && command !== 'status') throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const args: Args = { command, json: false };
  const flags = command === 'check' ? ['--file', '--max-age', '--json'] : ['--file', '--max-age'];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '-h' || arg === '--help') return 'help';
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    if (!flags.includes(name)) {
      const what = arg.startsWith('-') ? `unknown option ${JSON.stringify(name)}` : `unexpected argument ${JSON.stringify(arg)}`;
      throw new UsageError(what);
    }
    if (name === '--json') {
      if (eq > 0) throw new UsageError('--json takes no value');
      args.json = true;
      continue;
    }
    let value: string;
    if (eq > 0) value = arg.slice(eq + 1);
    else if (i + 1 < rest.length) value = rest[++i];
    else throw new UsageError(`${name} needs a value`);
    const key = name === '--file' ? 'file' : 'maxAge';
    if (args[key] !== undefined) throw new UsageError(`${name} given twice`);
    args[key] = value;
  }
  return args;
}

/** The file and threshold: flags first, then the library's env vars and defaults. */
function settings(args: Args): { file: string; maxAgeMs: number } {
  // Same parsing, precedence and coded errors as start(): a probe and the
  // worker sharing one environment can never disagree on the file.
  const resolved = resolveOptions({}, process.env);
  const file = args.file !== undefined ? checkFile(args.file, { kind: 'option', name: '--file' }) : resolved.file;
  const maxAge =
    args.maxAge !== undefined
      ? parseSeconds(args.maxAge, { kind: 'option', name: '--max-age' }, false)
      : 2 * resolved.interval;
  return { file, maxAgeMs: Math.round(maxAge * 1000) };
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
  if (r.state === 'missing') return 'missing';
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
  let file: string;
  let maxAgeMs: number;
  try {
    ({ file, maxAgeMs } = settings(args));
  } catch (error) {
    const coded = error as Error & { code?: string };
    if (typeof coded.code !== 'string' || !coded.code.startsWith('ERR_PULSE_')) throw error;
    // A bad flag is a usage error; a bad env var is the environment's.
    io.err(`${coded.message} (${coded.code})\n${coded.code === 'ERR_PULSE_INVALID_OPTION' ? USAGE : ''}`);
    return 2;
  }
  const now = Date.now();
  const result = probe(file, maxAgeMs, now);
  if (args.command === 'status') io.out(statusText(result, now));
  else if (args.json) io.out(`${JSON.stringify(result)}\n`);
  else io.out(verdictLine(result));
  return result.ok ? 0 : 1;
}
