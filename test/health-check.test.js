'use strict';
// Custom health checks: while the check returns anything but true, throws or
// times out, beats are withheld and the record names the check and its error.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPulse, tmpDir, sleep, waitFor, readRecord, runChild, assertExit, blockFor, STRATEGY } = require('./helpers');

/**
 * Starts a pulse whose check answers what `verdict.fn` says, lets it beat,
 * turns the check bad, and returns what the file and status() showed.
 */
async function failThenRecover(t, failing, options = {}) {
  const file = path.join(tmpDir(t), 'health');
  let fn = () => true;
  const pulse = startPulse({
    file,
    interval: 0.1,
    maxStall: 5,
    healthCheck: function queueReady() { return fn(); },
    ...options,
  });
  t.after(() => pulse.stop());
  await sleep(300);
  assert.equal(pulse.status().withheld, 0, 'a passing check withholds nothing');
  assert.equal(pulse.status().healthCheck.healthy, true);
  const beatsBefore = pulse.status().beats;

  fn = failing;
  const failedAt = Date.now();
  const record = await waitFor(() => {
    const r = readRecord(file);
    return r.state === 'unhealthy' ? r : null;
  }, 5000);
  const mtimeAtRecord = fs.statSync(file).mtimeMs;
  await sleep(400); // several deadlines while failing
  const during = pulse.status();
  const mtimeLater = fs.statSync(file).mtimeMs;
  assert.ok(mtimeLater <= failedAt + 300, `the file was touched ${mtimeLater - failedAt} ms after the check began failing`);
  assert.equal(mtimeLater, mtimeAtRecord, 'the unhealthy record kept the last beat\'s mtime');
  assert.ok(during.beats <= beatsBefore + 3, `beats went on: ${beatsBefore} -> ${during.beats}`);
  assert.ok(during.withheld >= 2, `withheld ${during.withheld}`);
  assert.equal(during.healthCheck.withheld, during.withheld, 'every withheld deadline was the check\'s');
  assert.equal(during.stalled, false, 'the loop itself answers');
  assert.equal(during.healthCheck.healthy, false);
  assert.equal(during.healthCheck.name, 'queueReady');
  assert.ok(during.healthCheck.failingSince instanceof Date);
  assert.ok(during.healthCheck.failures >= 2, 'the check keeps running while it fails');

  fn = () => true;
  const recoveredAt = Date.now();
  await waitFor(() => fs.statSync(file).mtimeMs > recoveredAt, 3000, 5);
  const after = readRecord(file);
  assert.equal(after.state, 'running');
  assert.match(after.message, /health check passing again/);
  assert.equal(pulse.status().healthCheck.healthy, true);
  assert.equal(pulse.status().healthCheck.error, null);
  return { record, during };
}

test('a check returning false withholds beats, names itself, and recovers', async (t) => {
  const { record, during } = await failThenRecover(t, () => false);
  assert.match(record.message, /^health check "queueReady" failing since \S+: returned false; beats withheld$/);
  assert.equal(record.healthCheck.name, 'queueReady');
  assert.equal(record.healthCheck.error, 'returned false');
  assert.equal(record.pid, process.pid, 'the static fields are still there');
  assert.equal(during.healthCheck.error, 'returned false');
});

test('a check that throws (sync or async) withholds beats with its error recorded', async (t) => {
  await t.test('sync throw', async (t) => {
    const { record } = await failThenRecover(t, () => { throw new Error('redis "gone"\nreally'); });
    // Quotes and a newline from the error survive as valid JSON.
    assert.equal(record.healthCheck.error, 'threw Error: redis "gone"\nreally');
    assert.ok(record.message.includes('threw Error: redis "gone"\nreally'));
  });
  await t.test('rejected promise', async (t) => {
    const { record, during } = await failThenRecover(t, async () => { throw new TypeError('no connection'); });
    assert.equal(record.healthCheck.error, 'threw TypeError: no connection');
    assert.equal(during.healthCheck.error, 'threw TypeError: no connection');
  });
});

test('a check that never settles times out and withholds beats', async (t) => {
  const { record } = await failThenRecover(t, () => new Promise(() => {}), { healthCheckTimeout: 0.05 });
  assert.equal(record.healthCheck.error, 'timed out after 0.05 s');
});

test('a check that answers anything but true fails', async (t) => {
  const { record } = await failThenRecover(t, () => undefined);
  assert.equal(record.healthCheck.error, 'returned undefined');
});

test('a check failing from the start withholds the first deadline; a slow passing one keeps beats', async (t) => {
  const dir = tmpDir(t);
  const bad = startPulse({ file: path.join(dir, 'bad'), interval: 0.2, maxStall: 5, healthCheck: () => false });
  t.after(() => bad.stop());
  const good = startPulse({
    file: path.join(dir, 'good'),
    interval: 0.2,
    maxStall: 5,
    healthCheck: () => new Promise((resolve) => setTimeout(resolve, 30, true)),
  });
  t.after(() => good.stop());
  await sleep(700);
  assert.equal(bad.status().beats, 1, 'only the synchronous first beat');
  assert.ok(bad.status().withheld >= 2);
  assert.equal(readRecord(path.join(dir, 'bad')).state, 'unhealthy');
  assert.ok(good.status().beats >= 3);
  assert.equal(good.status().withheld, 0);
  assert.equal(good.status().healthCheck.healthy, true);
  assert.ok(good.status().healthCheck.runs >= 3, `runs ${good.status().healthCheck.runs}`);
});

test('a stuck loop outranks the check: the record says stalled', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.1, maxStall: 0.4, healthCheck: () => false });
  t.after(() => pulse.stop());
  await sleep(300);
  assert.equal(readRecord(file).state, 'unhealthy');
  let state;
  blockFor(1200, () => { try { state = readRecord(file).state; } catch { /* mid-rename */ } });
  assert.equal(state, 'stalled');
  assert.equal(pulse.status().healthCheck.withheld < pulse.status().withheld, true);
});

test('no run after stop(); the check\'s timers never keep the process alive', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  let runs = 0;
  const pulse = startPulse({ file, interval: 0.05, maxStall: 5, healthCheck: () => ++runs > 0 });
  await sleep(200);
  pulse.stop();
  const seen = runs;
  await sleep(200);
  assert.equal(runs, seen);
  assert.equal(pulse.status().healthCheck.runs, seen);

  const result = runChild(`pulse.start({ file: ${JSON.stringify(file + '-child')}, interval: 0.05, strategy: STRATEGY,
    healthCheck: () => new Promise(() => {}), healthCheckTimeout: 10 });
    setTimeout(() => console.log('done'), 100);`, { timeout: 10000 });
  assertExit(result, 0);
  assert.equal(result.stdout.trim(), 'done');
});

test('healthCheck and healthCheckTimeout are validated with coded errors', () => {
  const { pulse } = require('./helpers');
  for (const bad of ['yes', 1, {}, null]) {
    assert.throws(() => pulse.start({ strategy: STRATEGY, file: '/nonexistent/x', healthCheck: bad }), (e) =>
      e instanceof TypeError && e.code === 'ERR_PULSE_INVALID_OPTION' && e.option === 'healthCheck' &&
      /option "healthCheck" must be a function/.test(e.message));
  }
  for (const bad of [0, -1, NaN, 1e9]) {
    assert.throws(() => pulse.start({ strategy: STRATEGY, file: '/nonexistent/x', healthCheck: () => true, healthCheckTimeout: bad }), (e) =>
      e instanceof RangeError && e.code === 'ERR_PULSE_INVALID_OPTION' && e.option === 'healthCheckTimeout' &&
      e.message.includes(String(bad)));
  }
  assert.throws(() => pulse.start({ strategy: STRATEGY, healthCheck: () => true, healthCheckTimeout: '5' }), {
    name: 'TypeError', code: 'ERR_PULSE_INVALID_OPTION',
  });
  const { resolveOptions } = require('../dist/contract/options');
  assert.equal(resolveOptions({ interval: 2 }, {}).healthCheckTimeout, 2, 'default: min(5, interval)');
  assert.equal(resolveOptions({ interval: 60 }, {}).healthCheckTimeout, 5);
});
