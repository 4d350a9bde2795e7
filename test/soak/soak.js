'use strict';
// Soak: many start/stop cycles, then many concurrent pulses for a while with
// the event loop answering. Checks that threads and descriptors return to
// their baseline, RSS stays bounded, and no deadline is missed or withheld.
//
//   npm run soak                                   # 10,000 cycles, 100 pulses, 60 s
//   SOAK_CYCLES=1000 SOAK_SECONDS=5 npm run soak   # the short version CI runs
//
// Other knobs: SOAK_PULSES (100), SOAK_INTERVAL (0.25 s), SOAK_RSS_LIMIT_MB
// (growth allowed after the cycles and after the pulses, 32). Prints a
// summary and a final JSON line; exits 1 if a check fails.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

if (typeof global.gc !== 'function') {
  // RSS is compared after a full GC: re-run with --expose-gc.
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const pulse = require(path.join(__dirname, '..', '..'));
const num = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const CYCLES = num('SOAK_CYCLES', 10000);
const PULSES = num('SOAK_PULSES', 100);
const SECONDS = num('SOAK_SECONDS', 60);
const INTERVAL = num('SOAK_INTERVAL', 0.25);
const RSS_LIMIT_MB = num('SOAK_RSS_LIMIT_MB', 32);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-soak-'));
const threads = () => fs.readdirSync('/proc/self/task').length;
/** Open descriptors, each with what it points at. */
const fds = () => {
  const out = new Map();
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      out.set(fd, fs.readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // the readdir's own descriptor, closed by now
    }
  }
  return out;
};
/** Checks the descriptors against a baseline, naming any that appeared or went. */
const checkFds = (phase, base, end) => {
  const changed = [...new Set([...base.keys(), ...end.keys()])]
    .filter((fd) => base.get(fd) !== end.get(fd))
    .map((fd) => `${fd}: ${base.get(fd) ?? '-'} -> ${end.get(fd) ?? '-'}`);
  check(changed.length === 0, `${phase}: descriptors back to baseline (${base.size} -> ${end.size})${changed.length ? `: ${changed.join(', ')}` : ''}`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const tick = () => new Promise((resolve) => setImmediate(resolve));
// After a full GC and a turn of the loop, in which Node runs the addon
// handles' finalizers; then another GC for what they released.
const rssMb = async () => {
  global.gc();
  await tick();
  global.gc();
  return process.memoryUsage.rss() / 2 ** 20;
};
const round = (x, digits = 1) => Number(x.toFixed(digits));
const failures = [];
let checks = 0;
const check = (ok, message) => {
  checks++;
  if (!ok) failures.push(message);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
};

// First output now: Node opens stdout's stream (and libuv's spare
// descriptor with it) lazily, which would otherwise show up as a new
// descriptor in the first phase.
console.log(`soak: ${CYCLES} cycles, then ${PULSES} pulses x ${INTERVAL} s for ${SECONDS} s (node ${process.version})`);

async function cycles() {
  // Warm-up, so the baseline includes the loaded addon, compiled code and
  // malloc's per-thread arenas: what follows is the steady state.
  const cold = await rssMb();
  for (let i = 0; i < 200; i++) {
    pulse.start({ file: path.join(dir, `warm-${i % 10}`), interval: i % 2 ? 0.01 : 60 }).stop();
    if (i % 50 === 0) await tick();
  }
  const base = { threads: threads(), fds: fds(), rss: await rssMb() };
  console.log(`cycles: RSS MB ${round(cold)} cold, ${round(base.rss)} after 200 warm-up cycles`);
  const samples = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CYCLES; i++) {
    // Half beat every 10 ms, so some stops land while a beat is in flight.
    const p = pulse.start({ file: path.join(dir, `cycle-${i % 10}`), interval: i % 2 ? 0.01 : 60, maxStall: 5 });
    p.stop();
    // A turn of the loop now and then, as an app has: finalizers run there.
    if (i % 100 === 0) await tick();
    if ((i + 1) % Math.max(1, Math.floor(CYCLES / 10)) === 0) samples.push(round(await rssMb()));
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  await sleep(100);
  const end = { threads: threads(), fds: fds(), rss: await rssMb() };
  console.log(`cycles: ${CYCLES} start/stop in ${round(ms / 1000, 2)} s (${round((ms * 1000) / CYCLES)} µs each)`);
  console.log(`cycles: RSS MB ${round(base.rss)} -> ${round(end.rss)}; every ${CYCLES / 10}: ${samples.join(' ')}`);
  check(end.threads === base.threads, `cycles: threads back to baseline (${base.threads} -> ${end.threads})`);
  checkFds('cycles', base.fds, end.fds);
  check(end.rss - base.rss < RSS_LIMIT_MB, `cycles: RSS growth ${round(end.rss - base.rss)} MB < ${RSS_LIMIT_MB} MB`);
  return { cycles: CYCLES, coldRssMb: round(cold), seconds: round(ms / 1000, 2), usPerCycle: round((ms * 1000) / CYCLES), rssMb: [round(base.rss), round(end.rss)], rssEveryTenth: samples, threads: [base.threads, end.threads], fds: [base.fds.size, end.fds.size] };
}

async function concurrent() {
  const base = { threads: threads(), fds: fds(), rss: await rssMb() };
  const intervalMs = INTERVAL * 1000;
  const pulses = [];
  for (let i = 0; i < PULSES; i++) {
    const p = pulse.start({ file: path.join(dir, `pulse-${i}`), interval: INTERVAL, maxStall: Math.max(1, INTERVAL * 4) });
    pulses.push({ p, first: p.status().lastBeatAt.getTime(), mono: performance.now(), worstLateMs: 0 });
  }
  const running = { threads: threads(), rss: await rssMb() };

  // The loop stays responsive but not idle: small JSON work every 10 ms.
  let work = 0;
  const busy = setInterval(() => {
    work += JSON.stringify({ n: work, at: Date.now(), list: [1, 2, 3] }).length;
  }, 10);
  let peakRss = running.rss;
  const end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    await sleep(50 + Math.random() * 50);
    for (const entry of pulses) {
      // How far the latest beat landed after its deadline on the grid.
      const since = entry.p.status().lastBeatAt.getTime() - entry.first;
      const late = since % intervalMs;
      entry.worstLateMs = Math.max(entry.worstLateMs, late > intervalMs - 2 ? 0 : late);
    }
    peakRss = Math.max(peakRss, process.memoryUsage.rss() / 2 ** 20);
  }
  clearInterval(busy);

  const results = pulses.map((entry) => {
    const ranMs = performance.now() - entry.mono;
    const status = entry.p.status();
    entry.p.stop();
    // Beat 0 is start()'s; then one per deadline passed.
    return { expected: Math.floor(ranMs / intervalMs) + 1, ...status, worstLateMs: entry.worstLateMs };
  });
  await sleep(100);
  const after = { threads: threads(), fds: fds(), rss: await rssMb() };

  const beats = results.reduce((n, r) => n + r.beats, 0);
  const missed = results.reduce((n, r) => n + Math.max(0, r.expected - 1 - r.beats), 0);
  const withheld = results.reduce((n, r) => n + r.withheld, 0);
  const errors = results.reduce((n, r) => n + r.errors, 0);
  const late = results.map((r) => r.worstLateMs).sort((a, b) => a - b);
  console.log(`pulses: ${PULSES} x ${INTERVAL} s for ${SECONDS} s: ${beats} beats, ${withheld} withheld, ${errors} errors`);
  console.log(`pulses: worst lateness per pulse, ms: median ${round(late[late.length >> 1])}, max ${round(late[late.length - 1])}`);
  console.log(`pulses: threads ${base.threads} -> ${running.threads} running -> ${after.threads}; RSS MB ${round(base.rss)} -> ${round(running.rss)} running (peak ${round(peakRss)}) -> ${round(after.rss)}`);
  check(missed === 0, `pulses: no missed deadline (beats >= expected - 1 for every pulse; short by ${missed})`);
  check(withheld === 0, 'pulses: no beat withheld while the loop answers');
  check(errors === 0, 'pulses: no file error');
  check(running.threads === base.threads + PULSES, `pulses: one thread per pulse while running (${running.threads - base.threads})`);
  check(after.threads === base.threads, `pulses: threads back to baseline (${base.threads} -> ${after.threads})`);
  checkFds('pulses', base.fds, after.fds);
  check(after.rss - base.rss < RSS_LIMIT_MB, `pulses: RSS growth after stop ${round(after.rss - base.rss)} MB < ${RSS_LIMIT_MB} MB`);
  return {
    pulses: PULSES, interval: INTERVAL, seconds: SECONDS, beats, missed, withheld, errors,
    worstLateMs: { median: round(late[late.length >> 1]), max: round(late[late.length - 1]) },
    threads: [base.threads, running.threads, after.threads], fds: [base.fds.size, after.fds.size],
    rssMb: { before: round(base.rss), running: round(running.rss), peak: round(peakRss), after: round(after.rss) },
  };
}

(async () => {
  try {
    const summary = { node: process.version, cpus: os.availableParallelism(), cycles: await cycles(), concurrent: await concurrent() };
    console.log(JSON.stringify({ ok: failures.length === 0, failures, ...summary }));
    console.log(`soak: ${checks - failures.length} passed, ${failures.length} failed`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.exitCode = failures.length === 0 ? 0 : 1;
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
