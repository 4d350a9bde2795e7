'use strict';
// examples/thread-pool.js: each thread's pulse reflects its own event loop. A
// pool thread stuck in a task goes stale while the main thread and the other
// pool threads stay fresh.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { STRATEGY, tmpDir, sleep } = require('./helpers');
const { freePort } = require('./redis');
const { runExample, probe, waitForProbe, readJson, httpGet: get } = require('./workers');

const MAX_AGE = 2;

test('thread pool: a stuck pool thread goes stale alone; the others and the main thread stay fresh', async (t) => {
  const dir = tmpDir(t);
  const port = await freePort();
  const pool = runExample(t, 'thread-pool.js', {
    THREADS: '3',
    PORT: String(port),
    CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'pool-{threadId}'),
    CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5',
    CELERY_PULSE_MAX_STALL: '1.5',
  });
  await pool.waitForLine(/^main pid=\d+/);
  while ((pool.output().stdout.match(/^thread \d+ ready/gm) || []).length < 3) await sleep(50);
  const files = () => fs.readdirSync(dir).filter((f) => f.startsWith('pool-')).sort();
  assert.equal(files().length, 4, `one file per thread: ${files()}`);
  assert.ok(files().includes('pool-0'), 'the main thread is thread 0');
  const poolFiles = files().filter((f) => f !== 'pool-0');
  assert.match(await get(port, '/crunch?ms=50'), /^thread \d+ done/);

  const from = pool.output().stdout.length;
  const response = get(port, '/crunch?ms=7000');
  const line = await pool.waitForLine(/^thread \d+ crunching for 7000 ms/, 10000, from);
  const stuck = `pool-${line.split(' ')[1]}`;
  const staleAfter = await waitForProbe(path.join(dir, stuck), MAX_AGE, 1, 10000);
  assert.equal(readJson(path.join(dir, stuck)).state, 'stalled');
  for (const f of files().filter((f) => f !== stuck)) {
    assert.equal(probe(path.join(dir, f), MAX_AGE), 0, `${f} is fresh while ${stuck} is stuck`);
  }
  // The main thread still answers and the other threads still work.
  assert.match(await get(port, '/'), /^main thread 0/);
  assert.match(await get(port, '/crunch?ms=20'), /^thread \d+ done/);
  assert.equal(await response, `thread ${stuck.slice(5)} done\n`);
  await waitForProbe(path.join(dir, stuck), MAX_AGE, 0, 5000);
  t.diagnostic(`${stuck} stale ${staleAfter} ms into its 7 s task`);

  const exit = await pool.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, pool.output().stderr);
  // The main thread's file goes at stop(). A pool thread's goes when the
  // thread is terminated under the native strategy (the addon's cleanup
  // hook); under the worker strategy no JavaScript runs in a terminated
  // thread, and its heartbeat thread ends with it, so the file is left to go
  // stale (docs/internals.md says so).
  assert.deepEqual(files(), STRATEGY === 'native' ? [] : poolFiles,
    'templated files removed: main by stop(), pool threads when terminated (native strategy)');
});

test('a stuck main thread goes stale alone; its pool threads stay fresh', async (t) => {
  const dir = tmpDir(t);
  const { runChildAsync, assertExit } = require('./helpers');
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const fs = require('node:fs');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    const file = path.join(dir, 't-{threadId}');
    const main = pulse.start({ file, interval: 0.1, maxStall: 0.4, strategy: STRATEGY });
    const workers = [0, 1].map(() => new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      require(workerData.pkg).start({ file: workerData.file, interval: 0.1, maxStall: 0.4, strategy: workerData.strategy });
      parentPort.postMessage('up');
      setInterval(() => {}, 1000);\`, { eval: true, workerData: { pkg: ${JSON.stringify(path.join(__dirname, '..'))}, file, strategy: STRATEGY } }));
    Promise.all(workers.map((w) => new Promise((r) => w.once('message', r)))).then(() => {
      const end = Date.now() + 1500;
      while (Date.now() < end); // the main loop is stuck; the workers' loops are not
      const ages = Object.fromEntries(fs.readdirSync(dir).filter((f) => f.startsWith('t-')).map((f) => [f, Date.now() - fs.statSync(path.join(dir, f)).mtimeMs]));
      console.log(JSON.stringify({ ages, main: JSON.parse(fs.readFileSync(main.file, 'utf8')).state }));
      for (const w of workers) w.terminate();
      main.stop();
    });`, { timeout: 30000 });
  assertExit(result, 0);
  const { ages, main } = JSON.parse(result.stdout);
  assert.equal(Object.keys(ages).length, 3);
  assert.equal(main, 'stalled');
  assert.ok(ages['t-0'] > 700, `main thread's file age ${ages['t-0']} ms`);
  for (const [f, age] of Object.entries(ages)) if (f !== 't-0') assert.ok(age < 400, `${f} age ${age} ms`);
});
