'use strict';
// A celery-node worker: consumes tasks that any Celery client (Python
// included) sends through Redis, with the heartbeat set up in one line from
// worker.conf, as in a Python Celery app.
//
//   REDIS_URL=redis://127.0.0.1:6379 node examples/celery-worker.js
//
// Then, from Python:  Celery(broker=url, backend=url).send_task('tasks.add', args=[2, 3])
const celery = require('celery-node');
const { initCeleryPulse } = require('celery-pulse-native');

const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const worker = celery.createWorker(url, url, process.env.CELERY_QUEUE || 'celery');

// The pulse_* settings of the Python library, read by initCeleryPulse.
worker.conf.pulse_healthcheck_file = process.env.PULSE_FILE || '/tmp/celery_healthcheck';
worker.conf.pulse_heartbeat_interval = process.env.PULSE_INTERVAL || '10';
worker.conf.pulse_max_stall = process.env.PULSE_MAX_STALL || '30';

// celery-node passes the task's args, then its kwargs.
worker.register('tasks.add', (a, b) => a + b);
worker.register('tasks.crunch', (ms) => {
  const end = Date.now() + ms;
  while (Date.now() < end); // synchronous work: the loop is stuck until it returns
  return ms;
});

const pulse = initCeleryPulse(worker);
worker.start();
worker.isReady().then(() => console.log(`ready pid=${process.pid} file=${pulse.file}`));

process.once('SIGTERM', async () => {
  await worker.whenCurrentJobsFinished();
  pulse.stop();
  await worker.disconnect(); // waits for the broker's pending BRPOP (up to 5 s)
});
