'use strict';
// examples/bullmq-worker.js against a real Redis: jobs keep the file fresh, a
// job that holds the loop past maxStall makes the probe fail while it runs,
// and the health check withholds beats while Redis is gone.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { tmpDir, sleep } = require('./helpers');
const { REDIS_SKIP, startRedis } = require('./redis');
const { runExample, check, probe, waitForProbe, readJson } = require('./workers');

// Beats every 0.5 s, withheld after 1.5 s of silence; the probe allows 2 s.
const PULSE_ENV = { CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5', CELERY_PULSE_MAX_STALL: '1.5' };
const MAX_AGE = 2;

async function producer(t, url) {
  const IORedis = require('ioredis');
  const { Queue } = require('bullmq');
  const connections = [new IORedis(url, { maxRetriesPerRequest: null })];
  const queue = new Queue('reports', { connection: connections[0] });
  let closed = false;
  // On a failure too: a client left retrying (BullMQ's own duplicated
  // connections included) would hold the test process open. close() may wait
  // on a Redis that is already gone, so it gets a bounded time, then every
  // connection is dropped.
  t.after(async () => {
    if (closed) return;
    closed = true;
    await Promise.race([queue.close().catch(() => undefined), sleep(3000)]);
    await queue.disconnect().catch(() => undefined);
    for (const c of connections) c.disconnect();
  });
  await queue.waitUntilReady();
  // The job's own state, polled: an event published before the waiter
  // subscribed (a loaded machine) cannot be missed.
  async function finished(job, timeoutMs) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const state = await job.getState();
      if (state === 'completed') return (await queue.getJob(job.id)).returnvalue;
      if (state === 'failed') throw new Error(`job ${job.name} failed: ${(await queue.getJob(job.id)).failedReason}`);
      if (Date.now() > end) throw new Error(`job ${job.name} (id ${job.id}) not finished within ${timeoutMs} ms: ${state}`);
      await sleep(25);
    }
  }
  return {
    async run(name, data = {}, timeoutMs = 20000) {
      return finished(await queue.add(name, data), timeoutMs);
    },
    finished,
    add: (name, data) => queue.add(name, data),
    /** Before Redis stops: BullMQ connections retry forever otherwise. */
    async close() {
      if (closed) return;
      closed = true;
      await queue.close();
      // Connections handed in are the caller's to end.
      for (const c of connections) c.disconnect();
    },
  };
}

async function startWorker(t, redis) {
  const file = path.join(tmpDir(t), 'health');
  const worker = runExample(t, 'bullmq-worker.js', { ...PULSE_ENV, REDIS_URL: redis.url, CELERY_PULSE_HEALTHCHECK_FILE: file });
  await worker.waitForLine(/^ready pid=\d+/);
  return { worker, file };
}

test('BullMQ: jobs keep the file fresh; a job blocking the loop past maxStall fails the probe until it ends', { skip: REDIS_SKIP, timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const { worker, file } = await startWorker(t, redis);
  const queue = await producer(t, redis.url);

  const result = await queue.run('resize');
  assert.equal(result.job, 'resize');
  // Fresh at every look over three intervals of normal work.
  for (let i = 0; i < 8; i++) {
    await queue.run('resize');
    assert.equal(probe(file, MAX_AGE), 0, `stale during normal work (look ${i})`);
    await sleep(200);
  }
  assert.equal(readJson(file).state, 'running');

  const job = await queue.add('crunch', { ms: 7000 });
  const blockedAt = Date.now();
  const staleAfter = await waitForProbe(file, MAX_AGE, 1, 12000);
  const during = readJson(file);
  assert.equal(during.state, 'stalled', JSON.stringify(during));
  // The diagnosis names the job the worker is stuck in, and a busy thread.
  assert.deepEqual(during.active.map((a) => a.label), [`job reports/crunch#${job.id}`]);
  assert.equal(during.thread.state, 'running', JSON.stringify(during.thread));
  assert.match(check(['--file', file], MAX_AGE).stdout, /^stale: .*: stalled since .*event loop silent for.*active: job reports\/crunch#/);
  // The stderr block: the stuck frames (or why there are none), then the thread line.
  assert.match(worker.output().stderr,
    /celery-pulse-native: event loop stalled for [^\n]*\n( {4}(at |\.\.\. |\(no JavaScript stack)[^\n]*\n)+ {4}thread running[^\n]*; active: job reports\/crunch#/);
  if (during.stack !== null) assert.equal(during.stack[0].function, 'crunch');
  assert.match(during.message, /loop silent for/);
  // Stale no sooner than maxStall + the probe's max age allow.
  assert.ok(staleAfter >= 2500, `stale ${staleAfter} ms after the job was queued`);
  assert.equal(probe(file, MAX_AGE), 1);

  await queue.finished(job, 20000);
  const freshAfter = await waitForProbe(file, MAX_AGE, 0, 5000);
  assert.ok(Date.now() - blockedAt >= 7000, 'fresh again only after the job');
  // The worker itself recovered: it takes jobs and the record says so.
  assert.equal((await queue.run('resize')).job, 'resize');
  const record = readJson(file);
  assert.equal(record.state, 'running');
  assert.match(record.message, /answering again/);
  assert.deepEqual(record.lastStall.active.map((a) => a.label), [`job reports/crunch#${job.id}`]);
  assert.ok(record.lastStall.durationMs >= 6000, JSON.stringify(record.lastStall));
  t.diagnostic(`stale ${staleAfter} ms after the blocking job was queued; fresh ${freshAfter} ms after it finished`);

  const exit = await worker.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, worker.output().stderr);
  assert.equal(readJson(file).state, 'stopped');
  await queue.close();
});

test('BullMQ: the health check withholds beats while Redis is down; beats resume when it is back', { skip: REDIS_SKIP, timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const { worker, file } = await startWorker(t, redis);
  await sleep(1500);
  assert.equal(probe(file, MAX_AGE), 0);

  redis.stop();
  const staleAfter = await waitForProbe(file, MAX_AGE, 1, 10000);
  const record = readJson(file);
  assert.equal(record.state, 'unhealthy', JSON.stringify(record));
  assert.equal(record.healthCheck.name, 'bullmqReady');
  assert.match(record.message, /^health check "bullmqReady" failing since/);
  assert.equal(record.healthCheck.error, 'returned false');
  const line = check(['--file', file], MAX_AGE).stdout;
  assert.match(line, /^stale: .* age .*: health check "bullmqReady" failing since \S+: returned false; beats withheld/, line);

  const again = await startRedis(redis.port);
  t.after(() => again.stop());
  const freshAfter = await waitForProbe(file, MAX_AGE, 0, 15000);
  const back = readJson(file);
  assert.equal(back.state, 'running');
  assert.match(back.message, /health check passing again/);
  t.diagnostic(`stale ${staleAfter} ms after Redis stopped; fresh ${freshAfter} ms after it restarted`);

  const exit = await worker.stop();
  assert.equal(exit.signal, null);
});
