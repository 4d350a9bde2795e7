'use strict';
// Beat punctuality while the event loop is blocked, recorded in the blocked
// process itself: the busy loop polls the files' mtimes between spins.
// With `count` > 1 this is the scale run (many pulses in one process), and
// `rss` also reports the RSS those pulses added.
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { run, sleep, wallMs, mtimeMs, settle, blockFor, threadIds, contention } = require('../lib/child');
const { PKG, contender } = require('../lib/contenders');

run(async ({ contender: name, dir, count = 1, interval, maxStall, blockMs, preMs = 300, postMs = 300, rss = false, fifo = false }) => {
  require(PKG); // loaded before any reading, so only start() is measured
  const c = contender(name);
  const files = Array.from({ length: count }, (_, i) => path.join(dir, `pulse-${i}`));

  let rssBefore = null;
  if (rss) {
    await settle();
    rssBefore = process.memoryUsage.rss();
  }
  const threadsBefore = new Set(threadIds());
  const t0 = performance.now();
  const handles = files.map((file) => c.start({ file, interval, maxStall }));
  const startAllMs = performance.now() - t0;
  // The heartbeat's own threads (none for the setInterval heartbeat).
  const heartbeatThreads = threadIds().filter((tid) => !threadsBefore.has(tid));
  // Optionally lift those threads to real-time priority from outside, to show
  // what the scheduler's wakeup latency costs (needs CAP_SYS_NICE).
  let fifoError = null;
  if (fifo) {
    for (const tid of heartbeatThreads) {
      const r = spawnSync('chrt', ['-f', '-p', '1', String(tid)], { encoding: 'utf8' });
      if (r.status !== 0) fifoError = (r.stderr || String(r.error || `exit ${r.status}`)).trim();
    }
    if (heartbeatThreads.length === 0) fifoError = 'no heartbeat thread found';
  }
  let rssAfter = null;
  if (rss) {
    await sleep(500);
    await settle();
    rssAfter = process.memoryUsage.rss();
  }

  // Each new mtime is recorded with the heartbeat's own beat count, read at
  // the next turn of the poll (the count moves just after the touch). When
  // the count moved by more than one between two mtimes seen, this process
  // was off the CPU and missed seeing a beat, which did happen.
  const seen = files.map(() => []);
  const counts = files.map(() => []);
  const pending = files.map(() => false);
  const last = files.map(() => NaN);
  const poll = () => {
    for (let i = 0; i < files.length; i++) {
      if (pending[i]) {
        counts[i][counts[i].length - 1] = handles[i].beats();
        pending[i] = false;
      }
      const m = mtimeMs(files[i]);
      if (m !== last[i] && !Number.isNaN(m)) {
        last[i] = m;
        seen[i].push(m);
        counts[i].push(null);
        pending[i] = true;
      }
    }
  };

  const before = setInterval(poll, 1);
  await sleep(preMs);
  clearInterval(before);
  poll();
  const beatsBefore = handles.map((h) => h.beats());
  const load = contention(heartbeatThreads);
  const blockStart = wallMs();
  blockFor(blockMs, poll);
  const blockEnd = wallMs();
  const loadDuring = contention(heartbeatThreads, load);
  const beatsDuring = handles.map((h, i) => h.beats() - beatsBefore[i]);
  const after = setInterval(poll, 1);
  await sleep(postMs);
  clearInterval(after);
  poll();
  poll();

  const statuses = handles.map((h) => h.status());
  for (const h of handles) h.stop();
  return {
    contender: name,
    count,
    interval,
    maxStall,
    blockStart,
    blockEnd,
    mtimes: seen,
    counts,
    beatsDuring,
    beats: statuses.map((s) => s.beats),
    withheld: statuses.map((s) => s.withheld ?? 0),
    startAllMs,
    heartbeatThreads: heartbeatThreads.length,
    contention: loadDuring,
    fifoError,
    rssBefore,
    rssAfter,
  };
});
