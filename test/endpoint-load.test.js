'use strict';
// Load on the endpoint never delays a beat: wrk -c 64 -d 30s on /metrics
// while a 50 ms pulse beats; the largest gap between beats (the beats' own
// times: the file's mtimes) stays within interval + 5 ms with the native
// strategy. Its heartbeat thread asks the scheduler for a short slice, so on
// waking it does not wait behind a busy thread's whole slice (52.5 ms at most
// in 9 runs here; 54 ms before the short slice). The worker strategy's beat is
// a JavaScript thread, which cannot ask for that: interval + 10 ms (52.5 to
// 55.5 ms seen). Those bounds hold on a quiet host: the gaps are first taken
// without load, and on a host whose other work already delays the thread
// (the suite beside two CPU hogs) the bound is that delay + 20 ms (25 ms for
// the worker strategy). The gaps are printed for the record.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { STRATEGY, tmpDir } = require('./helpers');
const { startBlockable, which, hostLoad } = require('./endpoint-helpers');

const WRK = which('wrk');
const SKIP = WRK ? false : 'wrk is not installed (apt-get install wrk; .ci/run installs it)';

test('wrk -c 64 -d 30s on /metrics: the largest beat gap stays within interval + 5 ms (native; + 10 ms worker)', { skip: SKIP, timeout: 120000 }, async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const interval = 0.05;
  const w = await startBlockable(t, file, { interval, maxStall: 1 });
  t.after(() => w.stop());
  const seconds = Number(process.env.PULSE_WRK_SECONDS || 30);
  // The beats' times, as the heartbeat thread set them: the file's mtimes.
  const watch = () => {
    const mtimes = [];
    let last = 0;
    const poll = setInterval(() => {
      try {
        const ms = Number(fs.statSync(file, { bigint: true }).mtimeNs) / 1e6;
        if (ms !== last) mtimes.push((last = ms));
      } catch {
        // replaced by rename at this instant: read at the next tick
      }
    }, 1);
    return () => {
      clearInterval(poll);
      let largest = 0;
      let pairs = 0;
      for (let i = 1; i < mtimes.length; i++) {
        const gap = mtimes[i] - mtimes[i - 1];
        if (Math.round(gap / (interval * 1000)) !== 1) continue; // the poller missed a beat in between
        pairs++;
        largest = Math.max(largest, gap);
      }
      return { largest, pairs };
    };
  };
  // First without load: what this machine's scheduler gives the thread anyway.
  const load = hostLoad();
  const stopBaseline = watch();
  await new Promise((r) => setTimeout(r, (seconds / 3) * 1000));
  const baseline = stopBaseline();
  const busyShare = load();
  // The load runs on one thread at the lowest priority, as a scraper
  // elsewhere would not share this host's two cores.
  const wrk = spawn('nice', ['-n', '19', WRK, '-t1', '-c64', `-d${seconds}s`, `http://${w.address}/metrics`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let report = '';
  wrk.stdout.setEncoding('utf8').on('data', (d) => (report += d));
  t.after(() => wrk.kill('SIGKILL'));
  const done = new Promise((resolve) => wrk.on('close', resolve));
  const stopLoaded = watch();
  await done;
  const loaded = stopLoaded();
  const requests = Number(/Requests\/sec:\s+([\d.]+)/.exec(report)?.[1]);
  t.diagnostic(`wrk: ${requests} requests/s on /metrics; largest beat gap ${loaded.largest.toFixed(2)} ms under load ` +
    `(${loaded.pairs} gaps), ${baseline.largest.toFixed(2)} ms without (${baseline.pairs} gaps)`);
  // That the load ran: the native endpoint answers thousands a second here;
  // the worker strategy's niced JavaScript thread about 45 a second with two
  // CPU hogs beside the suite.
  assert.ok(requests > 20, report);
  assert.ok(loaded.pairs >= (seconds / interval) * 0.5, `only ${loaded.pairs} gaps seen`);
  // Quiet: no gap without load was more than 3 ms late, and the CPUs were
  // mostly idle meanwhile (the test's own poller and the pulse use little).
  const quiet = baseline.largest <= interval * 1000 + 3 && busyShare < 0.5;
  const bound = quiet
    ? interval * 1000 + (STRATEGY === 'native' ? 5 : 10)
    : baseline.largest + (STRATEGY === 'native' ? 20 : 25);
  t.diagnostic(`${quiet ? 'quiet' : 'busy'} host (CPUs ${(busyShare * 100).toFixed(0)} % busy without load): bound ${bound.toFixed(2)} ms`);
  assert.ok(loaded.largest <= bound, `largest beat gap ${loaded.largest} ms under load, ${baseline.largest} ms without (bound ${bound} ms)`);
});

// What the bound above rests on, read from /proc: the addon's two threads
// are named, the heartbeat thread keeps the process's nice and asks for a
// 0.1 ms slice (honoured from Linux 6.12), the endpoint thread runs 5 nice
// levels lower.
test('the threads: pulse-beat with a 0.1 ms slice, pulse-endpoint at nice + 5', {
  skip: STRATEGY === 'native' ? false : 'the worker strategy runs JavaScript threads, which cannot ask for either',
  timeout: 30000,
}, async (t) => {
  const dir = tmpDir(t);
  const w = await startBlockable(t, path.join(dir, 'health'), { interval: 0.05 });
  t.after(() => w.stop());
  const taskDir = `/proc/${w.child.pid}/task`;
  const threads = fs.readdirSync(taskDir).map((tid) => {
    const read = (name) => fs.readFileSync(`${taskDir}/${tid}/${name}`, 'utf8');
    const stat = read('stat');
    const slice = /^se\.slice\s*:\s*(\d+)/m.exec(read('sched'));
    return {
      tid: Number(tid),
      name: read('comm').trim(),
      nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]),
      slice: slice ? Number(slice[1]) : null,
    };
  });
  const main = threads.find((th) => th.tid === w.child.pid);
  const beat = threads.filter((th) => th.name === 'pulse-beat');
  const endpoint = threads.filter((th) => th.name === 'pulse-endpoint');
  t.diagnostic(JSON.stringify({ main, beat, endpoint }));
  assert.equal(beat.length, 1, JSON.stringify(threads));
  assert.equal(endpoint.length, 1, JSON.stringify(threads));
  assert.equal(beat[0].nice, main.nice);
  assert.equal(endpoint[0].nice, Math.min(19, main.nice + 5));
  const [major, minor] = require('node:os').release().split('.').map(Number);
  if (major > 6 || (major === 6 && minor >= 12)) {
    assert.equal(beat[0].slice, 100000);
    assert.ok(main.slice > 100000, `the main thread's slice ${main.slice} ns is the default`);
  } else {
    t.diagnostic(`Linux ${require('node:os').release()} has no per-thread slice: the beat keeps the default`);
  }
});
