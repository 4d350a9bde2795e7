'use strict';
// A BullMQ worker with a gated heartbeat and a custom health check.
//
//   REDIS_URL=redis://127.0.0.1:6379 \
//   CELERY_PULSE_HEALTHCHECK_FILE=/tmp/bullmq-health node examples/bullmq-worker.js
//
// The file stays fresh while the event loop answers AND the worker is
// running with a Redis connection that answers PING. Jobs named "crunch" hold
// the loop for job.data.ms (synchronous work, as a CPU-bound job would).
const IORedis = require('ioredis');
const { Worker } = require('bullmq');
const { start } = require('celery-pulse-native');

const connection = new IORedis(process.env.REDIS_URL || 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: null, // required by BullMQ workers
});

let worker;
// Interval, maxStall and file come from CELERY_PULSE_* env vars (or defaults).
const pulse = start({
  // Healthy = the worker runs and Redis answers. A PING that hangs on a
  // broken connection counts as failed after healthCheckTimeout.
  healthCheck: async function bullmqReady() {
    return worker.isRunning() && connection.status === 'ready' && (await connection.ping()) === 'PONG';
  },
});

function crunch(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end); // the loop is stuck until the job returns
}

// Each job runs inside pulse.track(): a stall's record lists the jobs running.
worker = new Worker(process.env.QUEUE || 'reports', (job) =>
  pulse.track(`job ${job.queueName}/${job.name}#${job.id}`, async () => {
    if (job.name === 'crunch') crunch(job.data.ms);
    return { job: job.name, pid: process.pid };
  }), { connection });

worker.on('error', (error) => console.error('worker error:', error.message));
worker.on('completed', (job) => console.log(`completed ${job.name} ${job.id}`));

worker.waitUntilReady().then(() => console.log(`ready pid=${process.pid} file=${pulse.file}`));

async function shutdown() {
  // A graceful stop with a deadline: a busy Redis or machine must not keep a
  // terminated worker alive until its orchestrator kills it.
  setTimeout(() => process.exit(0), 10000).unref();
  await worker.close();
  pulse.stop();
  await connection.quit();
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
