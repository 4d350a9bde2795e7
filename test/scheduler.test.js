'use strict';
// examples/scheduler.js (node-cron, the "beat"): fresh while it schedules, stale
// while a synchronous report holds its loop past maxStall, fresh afterwards.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { tmpDir } = require('./helpers');
const { runExample, probe, waitForProbe, readJson } = require('./workers');

const MAX_AGE = 2;

test('scheduler: ticks keep the file fresh; a 6 s synchronous report fails the probe until it ends', async (t) => {
  const file = path.join(tmpDir(t), 'beat-health');
  // The report fires once, at the wall-clock second 5 s from now.
  const reportSecond = new Date(Date.now() + 5000).getUTCSeconds();
  const beat = runExample(t, 'scheduler.js', {
    CELERY_PULSE_HEALTHCHECK_FILE: file,
    CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5',
    CELERY_PULSE_MAX_STALL: '1.5',
    TICK_SCHEDULE: '* * * * * *',
    REPORT_SCHEDULE: `${reportSecond} * * * * *`,
    REPORT_MS: '6000',
    TZ: 'UTC',
  });
  await beat.waitForLine(/^ready pid=\d+/);
  await beat.waitForLine(/^tick /);
  const seen = beat.output().stdout.length;
  await beat.waitForLine(/^tick /, 5000, seen);
  assert.equal(probe(file, MAX_AGE), 0, 'fresh while scheduling');

  await beat.waitForLine(/^report start/, 15000);
  const staleAfter = await waitForProbe(file, MAX_AGE, 1, 8000);
  assert.equal(readJson(file).state, 'stalled');
  await beat.waitForLine(/^report done/, 15000);
  const freshAfter = await waitForProbe(file, MAX_AGE, 0, 5000);
  const afterReport = beat.output().stdout.length;
  await beat.waitForLine(/^tick /, 5000, afterReport);
  assert.equal(readJson(file).state, 'running', 'ticking again');
  t.diagnostic(`stale ${staleAfter} ms into the report; fresh ${freshAfter} ms after it`);

  const exit = await beat.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, beat.output().stderr);
  assert.equal(readJson(file).state, 'stopped');
});
