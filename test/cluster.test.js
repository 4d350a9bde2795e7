'use strict';
// examples/cluster.js: per-worker files catch one stuck worker among four,
// which a single shared file hides; a crashed worker is replaced and its
// left-over file is told apart by its dead pid.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { tmpDir, sleep } = require('./helpers');
const { freePort } = require('./redis');
const { runExample, probe, waitForProbe, readJson } = require('./workers');

const MAX_AGE = 2;
const PULSE_ENV = { CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5', CELERY_PULSE_MAX_STALL: '1.5' };

/** Starts the example with `workers` workers; resolves once all of them listen. */
async function startCluster(t, file, workers) {
  const port = await freePort();
  const app = runExample(t, 'cluster.js', { ...PULSE_ENV, WORKERS: String(workers), PORT: String(port), CELERY_PULSE_HEALTHCHECK_FILE: file });
  await app.waitForLine(/^primary pid=\d+/);
  const deadline = Date.now() + 30000;
  while ((app.output().stdout.match(/^worker \d+ pid=/gm) || []).length < workers) {
    if (Date.now() > deadline) throw new Error(`workers did not start: ${JSON.stringify(app.output())}`);
    await sleep(50);
  }
  return { app, port };
}

function get(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Sends a request that holds one worker's loop for `ms`; resolves with that worker's id. */
async function crunchOne(app, port, ms) {
  const from = app.output().stdout.length;
  const response = get(port, `/crunch?ms=${ms}`);
  const line = await app.waitForLine(/^worker \d+ crunching/, 10000, from);
  return { id: Number(line.split(' ')[1]), response };
}

test('cluster of 4 with one stuck worker: per-worker files name it; one shared file hides it', async (t) => {
  await t.test('per-worker files', async (t) => {
    const dir = tmpDir(t);
    const { app, port } = await startCluster(t, path.join(dir, 'app-{workerId}'), 4);
    const files = () => fs.readdirSync(dir).filter((f) => f.startsWith('app-')).sort();
    assert.deepEqual(files(), ['app-0', 'app-1', 'app-2', 'app-3', 'app-4']);
    await sleep(1000);
    for (const f of files()) assert.equal(probe(path.join(dir, f), MAX_AGE), 0, `${f} fresh`);

    const { id, response } = await crunchOne(app, port, 8000);
    const stuck = path.join(dir, `app-${id}`);
    const staleAfter = await waitForProbe(stuck, MAX_AGE, 1, 10000);
    assert.equal(readJson(stuck).state, 'stalled');
    for (const f of files().filter((f) => f !== `app-${id}`)) {
      assert.equal(probe(path.join(dir, f), MAX_AGE), 0, `${f} (not the stuck worker) is fresh`);
    }
    assert.equal(await response, `worker ${id}\n`);
    await waitForProbe(stuck, MAX_AGE, 0, 5000);
    t.diagnostic(`worker ${id}'s file stale ${staleAfter} ms into its 8 s block`);

    const exit = await app.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, app.output().stderr);
    assert.deepEqual(files(), [], 'every templated file was removed on stop');
  });

  await t.test('one shared file', async (t) => {
    const dir = tmpDir(t);
    const shared = path.join(dir, 'app-shared');
    const { app, port } = await startCluster(t, shared, 4);
    const { response } = await crunchOne(app, port, 8000);
    // Well past the moment the stuck worker's own file went stale above.
    await sleep(4000);
    let fresh = 0;
    let sawStalled = false;
    for (let i = 0; i < 20; i++) {
      fresh += probe(shared, MAX_AGE) === 0 ? 1 : 0;
      sawStalled ||= readJson(shared).state === 'stalled';
      await sleep(100);
    }
    assert.equal(fresh, 20, 'the live workers keep the shared file fresh: the probe passes');
    assert.ok(sawStalled, 'only its content says a worker stalled');
    await response;
    await app.stop();
  });
});

test('cluster: a crashed worker is replaced; its file stays behind with a dead pid', async (t) => {
  const dir = tmpDir(t);
  const { app } = await startCluster(t, path.join(dir, 'app-{workerId}'), 2);
  const line = app.output().stdout.match(/^worker 1 pid=(\d+)/m);
  const pid = Number(line[1]);
  process.kill(pid, 'SIGKILL'); // a crash: no cleanup runs
  await app.waitForLine(/^worker 1 died \(SIGKILL\); forking a replacement/);
  await app.waitForLine(/^worker 3 pid=\d+/);
  await waitForProbe(path.join(dir, 'app-1'), MAX_AGE, 1, 10000); // no beat since the crash
  const left = readJson(path.join(dir, 'app-1'));
  assert.equal(left.pid, pid);
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'its pid is gone');
  for (const f of ['app-0', 'app-2', 'app-3']) assert.equal(probe(path.join(dir, f), MAX_AGE), 0, `${f} fresh`);
  await app.stop();
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('app-')), ['app-1'], 'only the crashed worker\'s file remains');
});
