'use strict';
// exitOnStall: a loop silent that long gets an "exited" record, the log block,
// then the whole process ends with EXIT_ON_STALL_STATUS (70), under both
// strategies; the next start() keeps the diagnosis as `previous`. A busy loop
// that answers within maxStall, and an expectStall() window, are never ended.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { spawnSync } = require('node:child_process');
const { PKG, pulse, runChildAsync, tmpDir, readRecord, STRATEGY } = require('./helpers');

const STATUS = 70;

test('the documented exit status is 70, one Node never gives (1 to 14, 128 + signal)', () => {
  assert.equal(pulse.EXIT_ON_STALL_STATUS, STATUS);
});

// A child stuck in a JavaScript loop in a function named stuckInLoop.
function stuckChild(file, extra = '') {
  return `pulse.start({ file: ${JSON.stringify(file)}, interval: 0.2, maxStall: 1, exitOnStall: 2, strategy: STRATEGY${extra} });
    setTimeout(function stuckInLoop() { console.log('stuck at', Date.now()); for (;;) {} }, 300);`;
}

test(`${STRATEGY}: a loop stuck past exitOnStall ends the process with status 70, an "exited" record and the log block`, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = await runChildAsync(stuckChild(file), { timeout: 20000 });
  assert.equal(result.signal, null, result.stderr);
  assert.equal(result.status, STATUS, result.stderr);
  // Ended within exitOnStall plus a few deadlines of getting stuck (loaded machine: generous).
  const stuckAt = Number(/stuck at (\d+)/.exec(result.stdout)[1]);
  const record = readRecord(file);
  const endedAt = Date.parse(record.updatedAt);
  assert.ok(endedAt - stuckAt >= 2000 && endedAt - stuckAt < 6000, `ended ${endedAt - stuckAt} ms after getting stuck`);
  assert.equal(record.state, 'exited');
  assert.match(record.message, /exitOnStall \(2\.0 s\) ended the process with status 70/);
  assert.equal(typeof record.stalledSince, 'string');
  assert.equal(record.thread.state, 'running');
  assert.match(result.stderr, /event loop stalled for \d+\.\d s .*beats withheld/);
  assert.match(result.stderr, /exitOnStall \(2\.0 s\): ending the process with status 70\n/);
  if (STRATEGY === 'native') {
    assert.equal(record.stack[0].function, 'stuckInLoop');
    assert.match(record.message, /; at stuckInLoop \(/);
    assert.match(result.stderr, /ending the process with status 70\n {4}at stuckInLoop \(/);
  }
  // The probe says why the file is stale.
  const check = spawnSync(process.execPath, [path.join(PKG, 'bin', 'celery-pulse-native.js'), 'check', '--file', file, '--max-age', '0.5'], { encoding: 'utf8', timeout: 20000 });
  assert.equal(check.status, 1, check.stderr);
  assert.match(check.stdout + check.stderr, /exitOnStall \(2\.0 s\) ended the process with status 70; thread running/);
  // The next start() keeps the diagnosis.
  const next = pulse.start({ file, interval: 5, strategy: STRATEGY });
  t.after(() => next.stop());
  const previous = readRecord(file).previous;
  assert.equal(previous.state, 'exited');
  assert.equal(previous.stalledSince, record.stalledSince);
  assert.deepEqual(previous.thread, record.thread);
  if (STRATEGY === 'native') assert.equal(previous.stack[0].function, 'stuckInLoop');
});

test(`${STRATEGY}: a loop stuck in a system call is ended too; logStalls "json" logs one JSON line with the status`, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = await runChildAsync(
    `pulse.start({ file: ${JSON.stringify(file)}, interval: 0.2, maxStall: 1, exitOnStall: 1.5, logStalls: 'json', strategy: STRATEGY });
     setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000), 300);`,
    { timeout: 20000 },
  );
  assert.equal(result.status, STATUS, result.stderr);
  const lines = result.stderr.trim().split('\n').map((line) => JSON.parse(line));
  const last = lines.at(-1);
  assert.equal(last.msg, 'celery-pulse-native: event loop stalled, ending the process');
  assert.equal(last.exitStatus, STATUS);
  assert.equal(last.thread.state, 'sleeping');
  assert.equal(readRecord(file).state, 'exited');
});

test(`${STRATEGY}: CELERY_PULSE_EXIT_ON_STALL sets it; status() says it`, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = await runChildAsync(
    `const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 0.2, maxStall: 1, strategy: STRATEGY });
     console.log(JSON.stringify(p.status().exitOnStall));
     setTimeout(() => { for (;;) {} }, 300);`,
    { env: { CELERY_PULSE_EXIT_ON_STALL: '1.5' }, timeout: 20000 },
  );
  assert.equal(result.status, STATUS, result.stderr);
  assert.equal(result.stdout.trim(), '1.5');
  const off = pulse.start({ file: path.join(tmpDir(t), 'off'), interval: 5, strategy: STRATEGY });
  assert.equal(off.status().exitOnStall, false);
  off.stop();
});

test(`${STRATEGY}: a busy loop answering within maxStall is never ended; an expectStall() window longer than exitOnStall is honoured`, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  // Blocks of 0.6 s against maxStall 1.5 s for 5 s, then a 3 s block inside
  // a 5 s expectStall() window, with exitOnStall 2 s; then a clean exit.
  const result = await runChildAsync(
    `const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 0.2, maxStall: 1.5, exitOnStall: 2, strategy: STRATEGY });
     const block = (ms) => { const end = Date.now() + ms; while (Date.now() < end); };
     const until = Date.now() + 5000;
     (function busy() {
       block(600);
       if (Date.now() < until) return void setTimeout(busy, 20);
       p.expectStall(5, 'a long step');
       block(3000);
       setTimeout(() => { console.log(JSON.stringify(p.status())); p.stop(); }, 500);
     })();`,
    { timeout: 30000 },
  );
  assert.equal(result.signal, null, result.stderr);
  assert.equal(result.status, 0, result.stderr);
  const status = JSON.parse(result.stdout);
  assert.equal(status.withheld, 0, 'no beat withheld');
  assert.doesNotMatch(result.stderr, /stalled/);
  assert.equal(readRecord(file).state, 'stopped');
});

test(`${STRATEGY}: a stall past maxStall but shorter than exitOnStall is logged and survived`, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = await runChildAsync(
    `const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 0.2, maxStall: 1, exitOnStall: 4, strategy: STRATEGY });
     setTimeout(() => { const end = Date.now() + 2000; while (Date.now() < end); setTimeout(() => p.stop(), 600); }, 300);`,
    { timeout: 30000 },
  );
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /event loop stalled/);
  assert.match(result.stderr, /answering again/);
  assert.doesNotMatch(result.stderr, /ending the process/);
});

test(`${STRATEGY}: exitOnStall false, CELERY_PULSE_EXIT_ON_STALL=0 and the default are off; equal to maxStall is allowed`, (t) => {
  const dir = tmpDir(t);
  const saved = process.env.CELERY_PULSE_EXIT_ON_STALL;
  t.after(() => (saved === undefined ? delete process.env.CELERY_PULSE_EXIT_ON_STALL : (process.env.CELERY_PULSE_EXIT_ON_STALL = saved)));
  const cases = [
    [{ exitOnStall: false, systemd: 'auto' }, undefined, false],
    [{}, '0', false],
    [{}, undefined, false],
    [{ maxStall: 2, exitOnStall: 2, systemd: false }, undefined, 2],
    [{ maxStall: 2 }, ' 7.5 ', 7.5],
  ];
  for (const [i, [options, env, expected]] of cases.entries()) {
    if (env === undefined) delete process.env.CELERY_PULSE_EXIT_ON_STALL;
    else process.env.CELERY_PULSE_EXIT_ON_STALL = env;
    const p = pulse.start({ file: path.join(dir, `h${i}`), interval: 1, strategy: STRATEGY, ...options });
    try {
      assert.equal(p.status().exitOnStall, expected, JSON.stringify([options, env]));
    } finally {
      p.stop();
    }
  }
});
