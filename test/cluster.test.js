'use strict';
// examples/cluster.js probed with `celery-pulse-native check`: per-worker
// files and `check --all` catch one stuck worker among four, which a single
// shared file hides; a crashed worker is replaced, and its left-over file is
// reported gone (its pid is dead) and left out by --all.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { tmpDir, sleep } = require('./helpers');
const { freePort } = require('./redis');
const { runExample, check, probe, waitForProbe, readJson, httpGet: get } = require('./workers');

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

    const glob = path.join(dir, 'app-*');
    const before = check([glob], MAX_AGE);
    assert.equal(before.status, 0, before.stdout);
    assert.match(before.stdout, /^fresh: all 5 files \(--all\)$/m);

    const { id, response } = await crunchOne(app, port, 8000);
    const stuck = path.join(dir, `app-${id}`);
    const t0 = Date.now();
    let all;
    while ((all = check(['--all', glob], MAX_AGE)).status === 0) {
      assert.ok(Date.now() - t0 < 10000, `check --all still passes 10 s into worker ${id}'s block`);
      await sleep(100);
    }
    const staleAfter = Date.now() - t0;
    // It names the stuck worker's file, and only that one.
    assert.match(all.stdout, new RegExp(`^stale: 1 of 5 files: ${stuck} \\(--all\\)$`, 'm'), all.stdout);
    assert.match(all.stdout, new RegExp(`^stale: ${stuck} age .*: stalled since`, 'm'));
    assert.equal(all.stdout.split('\n').filter((l) => l.startsWith('fresh: ')).length, 4);
    assert.equal(readJson(stuck).state, 'stalled');
    // --any still passes: the other workers are fine.
    assert.equal(check(['--any', glob], MAX_AGE).status, 0);
    assert.equal(await response, `worker ${id}\n`);
    await waitForProbe(stuck, MAX_AGE, 0, 5000);
    assert.equal(check([glob], MAX_AGE).status, 0, 'recovered');
    t.diagnostic(`check --all failed ${staleAfter} ms into worker ${id}'s 8 s block, naming ${stuck}`);

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
      fresh += check(['--all', shared], MAX_AGE).status === 0 ? 1 : 0;
      sawStalled ||= readJson(shared).state === 'stalled';
      await sleep(100);
    }
    assert.equal(fresh, 20, 'the live workers keep the shared file fresh: check --all passes');
    assert.ok(sawStalled, 'only its content says a worker stalled');
    await response;
    await app.stop();
  });
});

test('cluster: a crashed worker is replaced; its left-over file is gone, and check --all passes', async (t) => {
  const dir = tmpDir(t);
  const { app } = await startCluster(t, path.join(dir, 'app-{workerId}'), 2);
  const line = app.output().stdout.match(/^worker 1 pid=(\d+)/m);
  const pid = Number(line[1]);
  process.kill(pid, 'SIGKILL'); // a crash: no cleanup runs
  await app.waitForLine(/^worker 1 died \(SIGKILL\); forking a replacement/);
  await app.waitForLine(/^worker 3 pid=\d+/);
  const crashed = path.join(dir, 'app-1');
  await waitForProbe(crashed, MAX_AGE, 1, 10000); // no beat since the crash
  const left = readJson(crashed);
  assert.equal(left.pid, pid);
  assert.equal(left.state, 'running', 'it had no chance to say anything');
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'its pid is gone');

  const single = check(['--file', crashed], MAX_AGE);
  assert.equal(single.status, 1);
  assert.match(single.stdout, new RegExp(`^gone: ${crashed} age .*its process is gone.*\\(pid ${pid}, no longer running\\)$`, 'm'));
  const glob = path.join(dir, 'app-*');
  const all = check(['--all', glob], MAX_AGE);
  assert.equal(all.status, 0, all.stdout);
  assert.match(all.stdout, new RegExp(`^fresh: 3 of 4 files \\(--all; 1 gone, left out: ${crashed}\\)$`, 'm'));
  const json = JSON.parse(check(['--all', '--json', glob], MAX_AGE).stdout);
  assert.deepEqual(json.gone, [crashed]);
  assert.deepEqual(json.stale, []);
  assert.deepEqual(json.fresh, ['app-0', 'app-2', 'app-3'].map((f) => path.join(dir, f)));
  await app.stop();
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('app-')), ['app-1'], 'only the crashed worker\'s file remains');
});

test('SIGTERM while the workers are still starting: the primary ends them and exits 0', async (t) => {
  // A worker told to stop closes its channel; the primary's next message to
  // it (its server is listening) then fails with EPIPE, which ended the
  // primary before its workers had an 'error' handler (7 of 48 runs under
  // Node 22, 0 under Node 20). SIGTERM at several points of the start.
  for (let i = 0; i < 12; i++) {
    const file = path.join(tmpDir(t), 'app-health-{workerId}');
    const port = await freePort();
    const app = runExample(t, 'cluster.js', { ...PULSE_ENV, WORKERS: '4', PORT: String(port), CELERY_PULSE_HEALTHCHECK_FILE: file });
    await app.waitForLine(/^primary pid=\d+/);
    await sleep(60 + i * 25);
    app.child.kill('SIGTERM');
    const result = await app.exited;
    assert.deepEqual(result, { code: 0, signal: null }, app.output().stderr);
    assert.doesNotMatch(app.output().stderr, /Unhandled|EPIPE/);
  }
});
