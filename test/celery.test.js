'use strict';
// examples/celery-worker.js (celery-node) fed by a real Python Celery client
// through a real Redis: Python producers and Node consumers work together,
// and a task that holds the loop past maxStall fails the probe while it runs.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { tmpDir, sleep } = require('./helpers');
const { REDIS_SKIP, startRedis } = require('./redis');
const { runExample, probe, waitForProbe, readJson, SYSTEM_PYTHON, CELERY_SKIP } = require('./workers');

const PRODUCER = path.join(__dirname, 'fixtures', 'celery_producer.py');
const MAX_AGE = 2;

/** Runs the Python Celery client; resolves with its JSON lines and exit status. */
function sendFromPython(url, task, args, timeoutSec = 20) {
  return new Promise((resolve, reject) => {
    const child = spawn(SYSTEM_PYTHON, [PRODUCER, url, task, JSON.stringify(args), String(timeoutSec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => {
      const lines = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      resolve({ status, sent: lines[0], outcome: lines[1], stderr });
    });
  });
}

test('celery-node worker: tasks from Python Celery; a blocking task fails the probe until it ends', { skip: REDIS_SKIP || CELERY_SKIP, timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const file = path.join(tmpDir(t), 'celery-health');
  const worker = runExample(t, 'celery-worker.js', {
    REDIS_URL: redis.url, PULSE_FILE: file, PULSE_INTERVAL: '0.5', PULSE_MAX_STALL: '1.5',
  });
  await worker.waitForLine(/^ready pid=\d+/);
  // initCeleryPulse took its settings from worker.conf.
  const started = readJson(file);
  assert.equal(started.interval, 0.5);
  assert.equal(started.maxStall, 1.5);

  const add = await sendFromPython(redis.url, 'tasks.add', [2, 3]);
  assert.equal(add.status, 0, add.stderr);
  assert.match(add.sent.celery, /^5\./, 'a real Python Celery 5 sent it');
  assert.deepEqual(add.outcome, { id: add.sent.sent, state: 'SUCCESS', result: 5 });
  await sleep(1000);
  assert.equal(probe(file, MAX_AGE), 0);

  const crunch = sendFromPython(redis.url, 'tasks.crunch', [7000], 30);
  const queuedAt = Date.now();
  const staleAfter = await waitForProbe(file, MAX_AGE, 1, 15000);
  const during = readJson(file);
  assert.equal(during.state, 'stalled', JSON.stringify(during));
  // initCeleryPulse tracks every task: the stall names the one running.
  assert.equal(during.active.length, 1, JSON.stringify(during.active));
  assert.match(during.active[0].label, /^task tasks\.crunch\[[0-9a-f-]{36}\]$/);
  assert.ok(staleAfter >= 2500, `stale ${staleAfter} ms after the task was sent`);

  const done = await crunch;
  assert.equal(done.status, 0, done.stderr);
  assert.equal(done.outcome.result, 7000);
  const freshAfter = await waitForProbe(file, MAX_AGE, 0, 5000);
  assert.ok(Date.now() - queuedAt >= 7000);
  assert.equal(readJson(file).state, 'running');

  const again = await sendFromPython(redis.url, 'tasks.add', [40, 2]);
  assert.equal(again.outcome.result, 42, 'the worker recovered');
  t.diagnostic(`stale ${staleAfter} ms after the blocking task was sent; fresh ${freshAfter} ms after its result arrived`);

  const exit = await worker.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, worker.output().stderr);
  assert.equal(readJson(file).state, 'stopped');
});
