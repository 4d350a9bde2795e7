'use strict';
// Strategy selection: 'auto' takes the addon when it loads and otherwise the
// worker strategy with one warning per process; 'native' without the addon is
// an error. CELERY_PULSE_TEST_NATIVE_PATH (a test hook) points the loader at a
// folder with no build, as on a platform without a prebuild or a compiler.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { PKG, tmpDir, runChild, runChildAsync, assertExit, readRecord } = require('./helpers');

function unloadable(t) {
  return { CELERY_PULSE_TEST_NATIVE_PATH: tmpDir(t, 'pulse-no-addon-'), CELERY_PULSE_STRATEGY: undefined };
}

const countWarnings = (stderr) => (stderr.match(/CELERY_PULSE_NO_NATIVE/g) || []).length;

test('auto uses the addon when it loads, without a warning', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 60 });
    console.log(p.status().strategy); p.stop();`, { env: { CELERY_PULSE_STRATEGY: undefined } });
  assertExit(result, 0);
  assert.equal(result.stdout.trim(), 'native');
  assert.equal(countWarnings(result.stderr), 0, result.stderr);
});

test('without the addon, auto falls back to the worker strategy and warns once per process', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    const warnings = [];
    process.on('warning', (w) => warnings.push({ name: w.name, code: w.code, message: w.message }));
    const a = pulse.start({ file: path.join(dir, 'a'), interval: 60 });
    const b = pulse.start({ file: path.join(dir, 'b'), interval: 60, strategy: 'auto' });
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const p = require(workerData.pkg).start({ file: workerData.file, interval: 60 });
      parentPort.postMessage(p.status().strategy);
      p.stop();\`, { eval: true, workerData: { pkg: ${JSON.stringify(PKG)}, file: path.join(dir, 'c') } });
    w.once('message', (inWorker) => setImmediate(() => {
      console.log(JSON.stringify({ strategies: [a.status().strategy, b.status().strategy, inWorker], warnings }));
      a.stop(); b.stop();
    }));`, { env: unloadable(t) });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.deepEqual(out.strategies, ['worker', 'worker', 'worker']);
  assert.equal(readRecord(path.join(dir, 'a')).strategy, 'worker');
  assert.equal(out.warnings.length, 1, `warnings: ${JSON.stringify(out.warnings)}`);
  const [warning] = out.warnings;
  assert.equal(warning.code, 'CELERY_PULSE_NO_NATIVE');
  assert.match(warning.message, /No native build was found/, 'says why: the load error');
  assert.match(warning.message, /"worker" strategy/);
  assert.match(warning.message, /linux-x64 or linux-arm64/, 'says how to get the native thread');
  assert.match(warning.message, /compiler/);
  assert.equal(countWarnings(result.stderr), 1, 'one warning printed, the worker thread included');
});

test('without the addon, strategy "native" throws ERR_PULSE_NATIVE_UNAVAILABLE; "worker" does not warn', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`
    const out = {};
    for (const how of ['option', 'env']) {
      try {
        if (how === 'env') process.env.CELERY_PULSE_STRATEGY = 'native';
        pulse.start({ file: ${JSON.stringify(file)}, interval: 60, ...(how === 'option' ? { strategy: 'native' } : {}) });
      } catch (e) { out[how] = { code: e.code, message: e.message }; }
    }
    delete process.env.CELERY_PULSE_STRATEGY;
    out.exists = require('node:fs').existsSync(${JSON.stringify(file)});
    const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 60, strategy: 'worker' });
    out.worker = p.status().strategy;
    p.stop();
    console.log(JSON.stringify(out));`, { env: unloadable(t) });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  for (const how of ['option', 'env']) {
    assert.equal(out[how]?.code, 'ERR_PULSE_NATIVE_UNAVAILABLE', `${how}: ${JSON.stringify(out[how])}`);
    assert.match(out[how].message, /native addon could not be loaded: No native build was found/);
  }
  assert.equal(out.exists, false, 'the refused start touched no file');
  assert.equal(out.worker, 'worker');
  assert.equal(countWarnings(result.stderr), 0, result.stderr);
});

test('CELERY_PULSE_STRATEGY=worker selects the worker strategy', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 60 });
    console.log(p.status().strategy); p.stop();`, { env: { CELERY_PULSE_STRATEGY: 'worker' } });
  assertExit(result, 0);
  assert.equal(result.stdout.trim(), 'worker');
  assert.equal(readRecord(file).strategy, 'worker');
});
