'use strict';
// Lifecycle: stop() is fast and final; the thread never keeps a process
// alive; every way a process or worker ends is clean (checked in children).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPulse, STRATEGY, tmpDir, blockFor, sleep, waitFor, threadCount, runChild, runChildAsync, assertExit, readRecord } = require('./helpers');

test('stop() returns in milliseconds with interval 3600 s, not at the deadline, and is final', async (t) => {
  const dir = tmpDir(t);
  const times = [];
  for (let i = 0; i < 50; i++) {
    const pulse = startPulse({ file: path.join(dir, `h${i}`), interval: 3600 });
    const t0 = process.hrtime.bigint();
    pulse.stop();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    pulse.stop(); // idempotent
    assert.equal(pulse.status().running, false);
  }
  times.sort((a, b) => a - b);
  // How fast stop() is (the contract's < 1 ms) is measured in bench/ (p50
  // 0.215 ms, p99 0.603 ms over 1,000 stops). Here only what holds on a loaded
  // machine: the fastest of 50 within 5 ms (beside two CPU hogs it was 1.14 ms
  // plain and 1.46 ms under ASan: the woken thread waits for a core), and
  // none waits for the 3600 s deadline.
  const fastest = 5;
  assert.ok(times[0] < fastest, `fastest stop() ${times[0].toFixed(3)} ms (bound ${fastest} ms)`);
  assert.ok(times[49] < 100, `slowest stop() ${times[49].toFixed(3)} ms`);

  const file = path.join(dir, 'fast');
  const pulse = startPulse({ file, interval: 0.02, maxStall: 5 });
  await sleep(100);
  pulse.stop();
  const { beats } = pulse.status();
  const mtime = fs.statSync(file).mtimeMs;
  await sleep(200);
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'no beat after stop()');
  assert.equal(pulse.status().beats, beats);
  const record = readRecord(file);
  assert.equal(record.state, 'stopped');
  assert.ok(Date.now() - fs.statSync(file).mtimeMs >= 150, 'the stopped record did not refresh the mtime');
});

test('stop() racing the thread\'s stall records always leaves the stopped record last', async (t) => {
  const dir = tmpDir(t);
  for (let round = 0; round < 3; round++) {
    const files = Array.from({ length: 30 }, (_, i) => path.join(dir, `r${round}-${i}`));
    const pulses = files.map((file) => startPulse({ file, interval: 0.01, maxStall: 0.02 }));
    await waitFor(() => pulses.every((pulse) => pulse.status().beats >= 3), 10000);
    // Silent for longer than maxStall: every thread rewrites its stall record
    // every 10 ms, so the stop() calls land at every phase of those writes.
    blockFor(100);
    for (const pulse of pulses) pulse.stop();
    const mtimes = files.map((file) => fs.statSync(file).mtimeMs);
    await sleep(50);
    files.forEach((file, i) => {
      assert.equal(readRecord(file).state, 'stopped', `${path.basename(file)}: written after stop()`);
      assert.equal(fs.statSync(file).mtimeMs, mtimes[i], `${path.basename(file)}: touched after stop()`);
    });
  }
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary file left');
});

test('removeOnStop unlinks the file', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 60, removeOnStop: true });
  assert.ok(fs.existsSync(file));
  pulse.stop();
  assert.equal(fs.existsSync(file), false);
});

/**
 * The thread count once it held still for `ms` (bounded): a worker-strategy
 * heartbeat thread waits up to 2 s for the next start() before it ends.
 */
async function settledThreadCount(ms = 2500) {
  let last = threadCount();
  let since = Date.now();
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    await sleep(50);
    const count = threadCount();
    if (count !== last) {
      last = count;
      since = Date.now();
    } else if (Date.now() - since >= ms) {
      break;
    }
  }
  return last;
}

test('2000 start/stop cycles leave no thread behind', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  // A worker-strategy heartbeat thread of an earlier test may still be waiting or ending.
  const baseline = STRATEGY === 'worker' ? await settledThreadCount() : threadCount();
  for (let i = 0; i < 2000; i++) {
    const pulse = startPulse({ file, interval: 0.5 });
    pulse.stop();
  }
  // The addon joins its thread inside stop(). A worker-strategy heartbeat
  // thread waits for the next start() (this loop reused one thread), then
  // ends on its own.
  if (STRATEGY === 'worker') await waitFor(() => threadCount() === baseline, 10000).catch(() => {});
  assert.equal(threadCount(), baseline);
});

test('a pulse never keeps the process alive: natural exit is prompt and clean', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const t0 = Date.now();
  const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 3600, strategy: STRATEGY });
    setTimeout(() => console.log('done'), 50);`);
  assertExit(result, 0);
  assert.equal(result.stdout.trim(), 'done');
  assert.ok(Date.now() - t0 < 5000, 'exited promptly');
});

test('process.exit(3) with a running pulse exits 3, no signal', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 0.01, maxStall: 5, strategy: STRATEGY });
    setTimeout(() => process.exit(3), 100);`);
  assertExit(result, 3);
});

test('an uncaught exception with a running pulse exits 1, no signal', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 0.01, maxStall: 5, strategy: STRATEGY });
    setTimeout(() => { throw new Error('boom'); }, 100);`);
  assertExit(result, 1);
  assert.match(result.stderr, /boom/);
});

// Terminating a worker runs no more JavaScript in it: the addon's cleanup hook
// leaves a "stopped" record, while a worker-strategy heartbeat ends with its
// owner and leaves the last record it wrote. Either way no beat follows.
test('50 worker threads, each with a pulse, terminated mid-beat: clean exit, no beat after', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const fs = require('node:fs');
    const dir = ${JSON.stringify(dir)};
    const baseline = fs.readdirSync('/proc/self/task').length;
    const source = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const pulse = require(\${JSON.stringify(require.resolve(${JSON.stringify(path.join(__dirname, '..'))}))});
      pulse.start({ file: workerData.file, interval: 0.01, maxStall: 5, strategy: workerData.strategy });
      parentPort.postMessage('up');
      setInterval(() => {}, 1000);\`;
    const workers = [];
    for (let i = 0; i < 50; i++) {
      const w = new Worker(source, { eval: true, workerData: { file: path.join(dir, 'w' + i), strategy: STRATEGY } });
      workers.push(new Promise((resolve, reject) => { w.once('message', () => resolve(w)); w.once('error', reject); }));
    }
    Promise.all(workers).then(async (ws) => {
      await new Promise((r) => setTimeout(r, 100));
      // Terminate at scattered moments so some land inside a beat.
      await Promise.all(ws.map((w, i) => new Promise((r) => setTimeout(r, (i * 7) % 23)).then(() => w.terminate())));
      const files = fs.readdirSync(dir).filter((f) => !f.startsWith('.'));
      const mtimes = files.map((f) => fs.statSync(path.join(dir, f)).mtimeMs);
      await new Promise((r) => setTimeout(r, 200));
      const beatenAfter = files.filter((f, i) => fs.statSync(path.join(dir, f)).mtimeMs !== mtimes[i]).length;
      const states = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).state);
      console.log(JSON.stringify({ states, beatenAfter, threads: fs.readdirSync('/proc/self/task').length, baseline }));
    });`, { timeout: 60000 });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.equal(out.states.length, 50);
  const expected = STRATEGY === 'worker' ? 'running' : 'stopped';
  assert.deepEqual([...new Set(out.states)], [expected], `each record says ${expected}`);
  assert.equal(out.beatenAfter, 0, 'no file was touched after its worker ended');
  assert.ok(out.threads <= out.baseline + 2, `threads ${out.threads} vs baseline ${out.baseline}`);
});

test('preloads (NODE_OPTIONS=--require, as in a container) do not run in the heartbeat thread', async (t) => {
  const dir = tmpDir(t);
  const preload = path.join(dir, 'preload.js');
  const seen = path.join(dir, 'seen');
  fs.writeFileSync(preload, `require('node:fs').appendFileSync(${JSON.stringify(seen)}, require('node:worker_threads').threadId + '\\n');\n`);
  const result = await runChildAsync(`
    const p = pulse.start({ file: ${JSON.stringify(path.join(dir, 'health'))}, interval: 0.02, maxStall: 5, strategy: STRATEGY });
    // Until three beats (the heartbeat thread may start slowly on a busy machine), 10 s at most.
    const end = Date.now() + 10000;
    const poll = setInterval(() => {
      if (p.status().beats < 3 && Date.now() < end) return;
      clearInterval(poll);
      console.log(p.status().beats);
      p.stop();
    }, 10);`, { env: { NODE_OPTIONS: `--require ${preload}` } });
  assertExit(result, 0);
  assert.ok(Number(result.stdout) >= 3, `beats: ${result.stdout}`);
  assert.deepEqual(fs.readFileSync(seen, 'utf8').trim().split('\n'), ['0'], 'the preload ran in the main thread only');
});

test('a pulse in a worker thread reflects its own worker loop, not the main one', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const fs = require('node:fs');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    const main = pulse.start({ file: path.join(dir, 'main'), interval: 0.05, maxStall: 0.3, strategy: STRATEGY });
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const pulse = require(workerData.pkg);
      const p = pulse.start({ file: workerData.file, interval: 0.05, maxStall: 0.3, strategy: workerData.strategy });
      parentPort.on('message', () => { const end = Date.now() + 1200; while (Date.now() < end); parentPort.postMessage(p.status()); });
      parentPort.postMessage('up');\`, { eval: true, workerData: { pkg: ${JSON.stringify(path.join(__dirname, '..'))}, file: path.join(dir, 'worker'), strategy: STRATEGY } });
    w.once('message', () => {
      w.postMessage('block');
      setTimeout(() => {
        const age = (f) => Date.now() - fs.statSync(path.join(dir, f)).mtimeMs;
        const snapshot = { main: age('main'), worker: age('worker'), record: JSON.parse(fs.readFileSync(path.join(dir, 'worker'), 'utf8')).state };
        w.once('message', (status) => { console.log(JSON.stringify({ ...snapshot, workerWithheld: status.withheld, mainWithheld: main.status().withheld })); main.stop(); w.terminate(); });
      }, 1000);
    });`, { timeout: 30000 });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.ok(out.main < 200, `main file age ${out.main} ms`);
  assert.ok(out.worker > 400, `worker file age ${out.worker} ms`);
  assert.equal(out.record, 'stalled');
  assert.ok(out.workerWithheld > 0);
  assert.equal(out.mainWithheld, 0);
});
