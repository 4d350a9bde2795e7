// The /metrics text of the worker strategy: the twin of native/metrics.cc,
// family for family (test/endpoint.test.js compares the two). Prometheus
// exposition format 0.0.4; the process collector reads /proc.
import * as fs from 'node:fs';

/** The families, in the order written: the contract's names. Same table as native/metrics.cc. */
export const FAMILIES = [
  ['celery_pulse_info', 'gauge', 'Build and settings of this pulse; always 1.'],
  ['celery_pulse_interval_seconds', 'gauge', 'Seconds between beats.'],
  ['celery_pulse_max_stall_seconds', 'gauge', 'Seconds the event loop may stay silent before beats are withheld (+Inf: the gate is off).'],
  ['celery_pulse_beats_total', 'counter', "Beats written: the file's mtime was refreshed."],
  ['celery_pulse_withheld_beats_total', 'counter', 'Deadlines whose beat was withheld (event loop silent, or a failing health check).'],
  ['celery_pulse_errors_total', 'counter', 'Failed file operations of the heartbeat thread.'],
  ['celery_pulse_stalls_total', 'counter', 'Stalls begun: the event loop stayed silent past max-stall.'],
  ['celery_pulse_stall_seconds_total', 'counter', 'Seconds the event loop was stalled, the ongoing stall included.'],
  ['celery_pulse_stalled', 'gauge', '1 while the event loop is stalled, else 0.'],
  ['celery_pulse_loop_silent_seconds', 'gauge', 'Seconds since the event loop last answered.'],
  ['celery_pulse_last_beat_timestamp_seconds', 'gauge', 'Unix time of the last beat.'],
  ['celery_pulse_active_jobs', 'gauge', 'Labels of track() calls still running.'],
  ['celery_pulse_stall_frame_info', 'gauge', 'The innermost frame of the ongoing stall (JavaScript, else native code or what the thread waits for); 1 while stalled with one.'],
  ['celery_pulse_loop_delay_seconds', 'histogram', 'How late each answer of the event loop came, against its ping period.'],
] as const;

/** Upper bounds (seconds) of the loop-delay histogram's finite buckets. */
export const DELAY_BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10] as const;

/** The bucket an answer `delayNs` late falls in; DELAY_BOUNDS.length for +Inf only. */
export function delayBucket(delayNs: number): number {
  const seconds = Math.max(0, delayNs) / 1e9;
  let i = 0;
  while (i < DELAY_BOUNDS.length && seconds > DELAY_BOUNDS[i]) i++;
  return i;
}

export const escapeLabel = (text: string): string => text.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
export const escapeHelp = (text: string): string => text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));

/** A sample value as native/metrics.cc writes it (PromNumber). */
export function promNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return value.toFixed(0);
  for (let precision = 6; precision <= 17; precision++) {
    const text = cFormatG(value, precision);
    if (Number(text) === value) return text;
  }
  return String(value);
}

// printf's %.<p>g.
function cFormatG(value: number, precision: number): string {
  const exp = value === 0 ? 0 : Math.floor(Math.log10(Math.abs(Number(value.toPrecision(precision)))));
  if (exp < -4 || exp >= precision) {
    const [mantissa, e] = value.toExponential(precision - 1).split('e');
    const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
    const n = Number(e);
    return `${m}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const fixed = value.toFixed(Math.max(0, precision - 1 - exp));
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

export interface MetricsInput {
  version: string;
  strategy: string;
  runtime: string;
  file: string;
  interval: number;
  maxStall: number;
  beats: number;
  withheld: number;
  errors: number;
  stalls: number;
  stallSeconds: number;
  stalled: boolean;
  loopSilentSeconds: number;
  lastBeatTimestamp: number;
  activeJobs: number;
  frame: { function: string; file: string; line: number } | null;
  /** Per bucket (not cumulative), then the count and sum of all answers. */
  delayBuckets: readonly number[];
  delayCount: number;
  delaySumSeconds: number;
}

function head(name: string, type: string, help: string): string {
  return `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
}

function readSmall(file: string): string {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return '';
  }
}

/** The process collector: process_cpu_seconds_total, ..., read from /proc now. */
export function processMetrics(): string {
  const stat = readSmall('/proc/self/stat');
  const paren = stat.lastIndexOf(')');
  const rows: Array<[string, string, string, number]> = [];
  // USER_HZ is 100 on every Linux Node supports.
  const ticks = 100;
  if (paren >= 0) {
    const f = stat.slice(paren + 2).split(' ');
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
    const utime = Number(f[11]);
    const stime = Number(f[12]);
    const start = Number(f[19]);
    const btime = /\nbtime (\d+)/.exec(readSmall('/proc/stat'));
    rows.push(['process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', (utime + stime) / ticks]);
    if (btime) rows.push(['process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', Number(btime[1]) + start / ticks]);
    // VmRSS is in kB whatever the page size (64 KiB on some arm64 kernels).
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(readSmall('/proc/self/status'));
    if (rss) rows.push(['process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', Number(rss[1]) * 1024]);
    rows.push(['process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', Number(f[20])]);
  }
  try {
    rows.push(['process_open_fds', 'gauge', 'Number of open file descriptors.', fs.readdirSync('/proc/self/fd').length - 1]);
  } catch {
    // no /proc: left out
  }
  const limits = /^Max open files\s+(\d+|unlimited)/m.exec(readSmall('/proc/self/limits'));
  if (limits) {
    rows.push(['process_max_fds', 'gauge', 'Maximum number of open file descriptors.', limits[1] === 'unlimited' ? Infinity : Number(limits[1])]);
  }
  return rows
    .filter((row) => Number.isFinite(row[3]) || row[3] === Infinity)
    .map(([name, type, help, value]) => `${head(name, type, help)}${name} ${promNumber(value)}\n`)
    .join('');
}

export function buildMetrics(m: MetricsInput): string {
  const label = (name: string, value: string) => `${name}="${escapeLabel(value)}"`;
  const values = [
    m.interval,
    m.maxStall,
    m.beats,
    m.withheld,
    m.errors,
    m.stalls,
    m.stallSeconds,
    m.stalled ? 1 : 0,
    m.loopSilentSeconds,
    m.lastBeatTimestamp,
    m.activeJobs,
  ];
  const [info, ...rest] = FAMILIES;
  let out = head(info[0], info[1], info[2]);
  out += `${info[0]}{${[label('version', m.version), label('strategy', m.strategy), label('runtime', m.runtime), label('file', m.file)].join(',')}} 1\n`;
  values.forEach((value, i) => {
    const [name, type, help] = rest[i];
    out += `${head(name, type, help)}${name} ${promNumber(value)}\n`;
  });
  const frame = rest[values.length];
  out += head(frame[0], frame[1], frame[2]);
  if (m.stalled && m.frame) {
    out += `${frame[0]}{${label('function', m.frame.function)},${label('file', m.frame.file)},${label('line', String(m.frame.line))}} 1\n`;
  }
  const delay = rest[values.length + 1];
  out += head(delay[0], delay[1], delay[2]);
  let cumulative = 0;
  DELAY_BOUNDS.forEach((bound, i) => {
    cumulative += m.delayBuckets[i] ?? 0;
    out += `${delay[0]}_bucket{le="${promNumber(bound)}"} ${cumulative}\n`;
  });
  out += `${delay[0]}_bucket{le="+Inf"} ${m.delayCount}\n`;
  out += `${delay[0]}_sum ${promNumber(m.delaySumSeconds)}\n`;
  out += `${delay[0]}_count ${m.delayCount}\n`;
  return out + processMetrics();
}
