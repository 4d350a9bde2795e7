'use strict';
// Per-process files: {pid}, {threadId}, {hostname} and {workerId} in `file`.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { pulse, startPulse, tmpDir, runChildAsync, assertExit, readRecord, withEnv, STRATEGY } = require('./helpers');

test('placeholders expand to this process and thread', (t) => {
  const dir = tmpDir(t);
  withEnv({ CELERY_PULSE_WORKER_ID: undefined }, () => {
    const p = startPulse({ file: path.join(dir, 'h-{pid}-{threadId}-{hostname}-{workerId}'), interval: 60 });
    const expected = path.join(dir, `h-${process.pid}-0-${os.hostname()}-0`);
    assert.equal(p.file, expected);
    assert.equal(p.status().file, expected);
    assert.equal(readRecord(expected).file, expected);
    p.stop();
  });
});

test('CELERY_PULSE_WORKER_ID gives {workerId}; a bad value is a coded error naming it', (t) => {
  const dir = tmpDir(t);
  withEnv({ CELERY_PULSE_WORKER_ID: 'slot-3' }, () => {
    const p = startPulse({ file: path.join(dir, 'w{workerId}'), interval: 60 });
    assert.equal(p.file, path.join(dir, 'wslot-3'));
    p.stop();
  });
  for (const bad of ['', '../x', 'a/b', '..', 'x'.repeat(65), 'a b']) {
    withEnv({ CELERY_PULSE_WORKER_ID: bad }, () => {
      assert.throws(() => startPulse({ file: path.join(dir, 'w{workerId}'), interval: 60 }), (e) =>
        e instanceof TypeError && e.code === 'ERR_PULSE_INVALID_ENV' && e.envVar === 'CELERY_PULSE_WORKER_ID' &&
        e.message.includes('CELERY_PULSE_WORKER_ID') && e.message.includes(JSON.stringify(bad)));
      // Not used by the path: not looked at.
      startPulse({ file: path.join(dir, 'plain'), interval: 60 }).stop();
    });
  }
});

test('an unknown placeholder or a stray brace is a coded error naming the option or env var and value', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'h-{worker}');
  assert.throws(() => startPulse({ file, interval: 60 }), (e) =>
    e instanceof TypeError && e.code === 'ERR_PULSE_INVALID_OPTION' && e.option === 'file' && e.value === file &&
    e.message.includes('{worker}') && e.message.includes(JSON.stringify(file)) && e.message.includes('{workerId}'));
  withEnv({ CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'h-{PID}') }, () => {
    assert.throws(() => startPulse({ interval: 60 }), (e) =>
      e.code === 'ERR_PULSE_INVALID_ENV' && e.envVar === 'CELERY_PULSE_HEALTHCHECK_FILE' && e.message.includes('{PID}'));
  });
  for (const stray of ['h-{pid', 'h-pid}', 'h-{}', 'h-{{pid}}']) {
    assert.throws(() => startPulse({ file: path.join(dir, stray), interval: 60 }), { code: 'ERR_PULSE_INVALID_OPTION' });
  }
  assert.throws(() => pulse.initCeleryPulse({ conf: { pulse_healthcheck_file: path.join(dir, '{nope}') } }), (e) =>
    e.code === 'ERR_PULSE_INVALID_OPTION' && e.option === 'conf.pulse_healthcheck_file');
  assert.deepEqual(fs.readdirSync(dir), [], 'nothing was touched');
});

test('a templated file is removed on stop by default; explicit removeOnStop wins', (t) => {
  const dir = tmpDir(t);
  const a = startPulse({ file: path.join(dir, 'a-{pid}'), interval: 60 });
  assert.ok(fs.existsSync(a.file));
  a.stop();
  assert.equal(fs.existsSync(a.file), false, 'templated: removed');

  const b = startPulse({ file: path.join(dir, 'b-{pid}'), interval: 60, removeOnStop: false });
  b.stop();
  assert.equal(readRecord(b.file).state, 'stopped');

  const c = startPulse({ file: path.join(dir, 'c'), interval: 60 });
  c.stop();
  assert.equal(readRecord(c.file).state, 'stopped', 'plain path: kept, as before');

  withEnv({ CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'env-{pid}') }, () => {
    const d = startPulse({ interval: 60 });
    d.stop();
    assert.equal(fs.existsSync(d.file), false, 'templated env var: removed');
  });
  const e = pulse.initCeleryPulse({ conf: { pulse_healthcheck_file: path.join(dir, 'conf-{pid}') } }, { strategy: STRATEGY });
  assert.equal(e.file, path.join(dir, `conf-${process.pid}`));
  e.stop();
  assert.equal(fs.existsSync(e.file), false, 'templated app.conf setting: removed');
});

test('{threadId} gives each worker thread its own file', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const file = ${JSON.stringify(path.join(dir, 't-{threadId}'))};
    const main = pulse.start({ file, interval: 60, strategy: STRATEGY });
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const p = require(workerData.pkg).start({ file: workerData.file, interval: 60, strategy: workerData.strategy });
      parentPort.postMessage({ file: p.file, threadId: require('node:worker_threads').threadId });\`,
      { eval: true, workerData: { pkg: ${JSON.stringify(path.join(__dirname, '..'))}, file, strategy: STRATEGY } });
    w.once('message', (m) => { console.log(JSON.stringify({ main: main.file, worker: m.file, threadId: m.threadId })); main.stop(); w.terminate(); });`);
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.equal(out.main, path.join(dir, 't-0'));
  assert.equal(out.worker, path.join(dir, `t-${out.threadId}`));
  assert.notEqual(out.threadId, 0);
});

test('{workerId} is the cluster worker id in a cluster worker, 0 in the primary', (t) => {
  const dir = tmpDir(t);
  const script = path.join(dir, 'app.js');
  fs.writeFileSync(script, `
    const cluster = require('node:cluster');
    const pulse = require(${JSON.stringify(path.join(__dirname, '..'))});
    const start = () => pulse.start({ file: ${JSON.stringify(path.join(dir, 'c-{workerId}'))}, interval: 60, strategy: ${JSON.stringify(STRATEGY)} });
    if (cluster.isPrimary) {
      const files = [start().file];
      for (let i = 0; i < 2; i++) cluster.fork().on('message', (f) => {
        files.push(f);
        if (files.length === 3) { console.log(JSON.stringify(files.sort())); for (const w of Object.values(cluster.workers)) w.kill(); }
      });
    } else {
      process.send(start().file);
    }`);
  const env = { ...process.env };
  delete env.CELERY_PULSE_WORKER_ID;
  const result = spawnSync(process.execPath, [script], { env, encoding: 'utf8', timeout: 30000 });
  assertExit(result, 0);
  assert.deepEqual(JSON.parse(result.stdout), [0, 1, 2].map((id) => path.join(dir, `c-${id}`)));
});

test('a templated file is removed too when the process ends naturally or the worker thread is terminated without stop()', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    pulse.start({ file: path.join(dir, 'main-{pid}'), interval: 0.05, strategy: STRATEGY });
    pulse.start({ file: path.join(dir, 'kept-{pid}'), interval: 0.05, strategy: STRATEGY, removeOnStop: false });
    const workers = [0, 1, 2].map(() => new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      require(workerData.pkg).start({ file: workerData.file, interval: 0.05, strategy: workerData.strategy });
      parentPort.postMessage('up');
      setInterval(() => {}, 1000);\`, { eval: true, workerData: { pkg: ${JSON.stringify(path.join(__dirname, '..'))}, file: path.join(dir, 'thread-{threadId}'), strategy: STRATEGY } }));
    Promise.all(workers.map((w) => new Promise((r) => w.once('message', r)))).then(async () => {
      const before = require('node:fs').readdirSync(dir).filter((f) => !f.startsWith('.')).length;
      await Promise.all(workers.map((w) => w.terminate()));
      console.log(JSON.stringify({ before, afterTerminate: require('node:fs').readdirSync(dir).filter((f) => !f.startsWith('.')).sort() }));
      // Then the process ends by itself: its environment's cleanup stops the pulses.
    });`);
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.equal(out.before, 5);
  const left = fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  if (STRATEGY === 'worker') {
    // Node runs no JavaScript in a worker thread ended by terminate(): no
    // 'exit' event, and JS is disallowed during its teardown. The addon's
    // native cleanup hook has no JS twin, so under the worker strategy a
    // terminated thread's file keeps its last record and goes stale.
    assert.equal(out.afterTerminate.length, 5, `terminated threads left ${out.afterTerminate}`);
    assert.deepEqual(left.map((f) => f.replace(/\d+$/, 'N')), ['kept-N', 'thread-N', 'thread-N', 'thread-N'],
      `after the process ended: ${left}`);
  } else {
    assert.equal(out.afterTerminate.length, 2, `terminated threads left ${out.afterTerminate}`);
    assert.equal(left.length, 1, `after the process ended: ${left}`);
  }
  const kept = left.find((f) => /^kept-\d+$/.test(f));
  assert.ok(kept, `after the process ended: ${left}`);
  assert.equal(readRecord(path.join(dir, kept)).state, 'stopped', 'removeOnStop: false keeps the stopped record');
});

test('a templated file is removed when a worker thread ends by itself without stop()', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    const workers = [0, 1].map((i) => new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const p = require(workerData.pkg).start({ file: workerData.file, interval: 0.05, strategy: workerData.strategy,
        removeOnStop: workerData.remove });
      parentPort.postMessage(require('node:fs').existsSync(p.file));
      setTimeout(() => {}, 200); // then the thread ends by itself\`, { eval: true, workerData: {
        pkg: ${JSON.stringify(path.join(__dirname, '..'))}, file: path.join(dir, 'thread-' + i + '-{threadId}'), strategy: STRATEGY,
        remove: i === 0 ? undefined : false } }));
    // Listened for from the start: a worker can end before the main thread
    // has read both messages (it did on a loaded machine), and an exit
    // listened for after it ends never comes.
    const exited = Promise.all(workers.map((w) => new Promise((r) => w.once('exit', r))));
    Promise.all(workers.map((w) => new Promise((r) => w.once('message', r)))).then(async (up) => {
      await exited;
      console.log(JSON.stringify({ up, left: require('node:fs').readdirSync(dir).filter((f) => !f.startsWith('.')) }));
    });`);
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.deepEqual(out.up, [true, true]);
  assert.equal(out.left.length, 1, `left ${out.left}`);
  assert.match(out.left[0], /^thread-1-\d+$/);
  assert.equal(readRecord(path.join(dir, out.left[0])).state, 'stopped');
});
