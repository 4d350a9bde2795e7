'use strict';
// Helpers for the scripts in bench/child/: each runs in a fresh process,
// reads one JSON argument and prints one JSON result line.
const fs = require('node:fs');
const os = require('node:os');

const RESULT_PREFIX = 'BENCH_RESULT ';

/** The JSON argument the parent passed as argv[2]. */
function args() {
  return JSON.parse(process.argv[2] || '{}');
}

function report(result) {
  process.stdout.write(RESULT_PREFIX + JSON.stringify(result) + '\n');
}

/** Runs `main(args)` and reports its result, or the error, then exits. */
function run(main) {
  Promise.resolve()
    .then(() => main(args()))
    .then(
      (result) => {
        report(result);
        process.exit(0);
      },
      (error) => {
        report({ error: String(error && error.stack ? error.stack : error), code: error && error.code });
        process.exit(1);
      },
    );
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wall-clock time in ms with sub-ms precision. */
const wallMs = () => performance.timeOrigin + performance.now();

/** mtime of `file` in wall ms (ns precision kept as far as a double allows), or NaN. */
function mtimeMs(file) {
  try {
    return Number(fs.statSync(file, { bigint: true }).mtimeNs) / 1e6;
  } catch {
    return NaN;
  }
}

/** CPU time (ns) the main thread (tid = pid) has run, from the scheduler; NaN where the kernel does not say. */
function mainThreadCpuNs() {
  try {
    return Number(fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

/** Ids of this process's threads. */
function threadIds() {
  return fs.readdirSync('/proc/self/task').map(Number);
}

/**
 * Summed scheduler stats of threads `tids` (those still alive): CPU time run
 * and time spent runnable but waiting for a CPU, in ns.
 */
function threadSched(tids) {
  let runNs = 0;
  let waitNs = 0;
  for (const tid of tids) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      runNs += run;
      waitNs += wait;
    } catch {
      // the thread has exited
    }
  }
  return { runNs, waitNs };
}

/** Machine-wide CPU ticks from /proc/stat: busy (not idle/iowait) and steal. */
function machineTicks() {
  const cols = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = cols;
  return { busy: user + nice + system + irq + softirq, steal: steal || 0, total: cols.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/**
 * Snapshot for measuring how contended the machine was over a span: the
 * cores other processes kept busy, the steal, and how long `tids` waited
 * for a CPU. Pass the result of a first call as `since`.
 */
function contention(tids, since) {
  const now = { at: performance.now(), ticks: machineTicks(), own: process.cpuUsage(), sched: threadSched(tids) };
  if (!since) return now;
  const seconds = (now.at - since.at) / 1000;
  const cores = os.cpus().length;
  const total = now.ticks.total - since.ticks.total;
  const share = (ticks) => (total > 0 ? (ticks / total) * cores : 0);
  const ownCores = (now.own.user - since.own.user + now.own.system - since.own.system) / 1e6 / seconds;
  return {
    seconds,
    otherCores: Math.max(0, share(now.ticks.busy - since.ticks.busy) - ownCores),
    ownCores,
    stealCores: share(now.ticks.steal - since.ticks.steal),
    threadWaitMs: (now.sched.waitNs - since.sched.waitNs) / 1e6,
    threadRunMs: (now.sched.runNs - since.sched.runNs) / 1e6,
  };
}

/** RSS split as the kernel reports it, in bytes: total, anonymous (private), file-backed. */
function rssParts() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (key) => Number((status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm')) || [])[1] || NaN) * 1024;
  return { total: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/**
 * Resident KB per mapped file ("[anon]" for anonymous mappings), from smaps.
 * The node binary is split by segment: its first read-only segment holds the
 * dynamic symbol tables, then code, read-only data and data.
 */
function rssByMapping() {
  const nodeBinary = fs.realpathSync(process.execPath);
  const out = {};
  let name = null;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = line.match(/^[0-9a-f]+-[0-9a-f]+ (\S+) (\S+) \S+ \S+\s*(.*)$/);
    if (head) {
      const [, perms, offset, file] = head;
      name = file || '[anon]';
      if (file === nodeBinary) {
        const part = Number.parseInt(offset, 16) === 0 ? 'symbol tables' : perms.includes('x') ? 'code' : perms.includes('w') ? 'data' : 'read-only data';
        name = `node binary: ${part}`;
      }
      continue;
    }
    const rss = line.match(/^Rss:\s+(\d+) kB/);
    if (rss) out[name] = (out[name] || 0) + Number(rss[1]);
  }
  return out;
}

/** Settles the heap so RSS readings compare: needs --expose-gc. */
async function settle() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await sleep(30);
  }
}

/**
 * Keeps the event loop busy for `ms` (no timers, no I/O callbacks run),
 * calling `onSpin` on each turn of the busy loop.
 */
function blockFor(ms, onSpin) {
  const end = performance.now() + ms;
  while (performance.now() < end) onSpin();
}

module.exports = {
  RESULT_PREFIX, args, report, run, sleep, wallMs, mtimeMs, mainThreadCpuNs, settle, blockFor, threadIds, threadSched, contention,
  rssParts, rssByMapping,
};
