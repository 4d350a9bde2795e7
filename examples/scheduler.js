'use strict';
// A scheduler process (the "beat" of a Celery deployment) built on node-cron.
// Its timers only fire while the event loop answers, so its liveness is
// exactly what the gated heartbeat measures.
//
//   CELERY_PULSE_HEALTHCHECK_FILE=/tmp/beat-health node examples/scheduler.js
const cron = require('node-cron');
const { start } = require('celery-pulse-native');

const pulse = start(); // settings from CELERY_PULSE_* env vars

// Stands in for enqueueing a periodic task: a real beat calls queue.add()
// (BullMQ) or client.sendTask() (celery-node) here.
const tick = cron.schedule(process.env.TICK_SCHEDULE || '*/5 * * * * *', ({ date }) => {
  console.log(`tick ${date.toISOString()}`);
}, { name: 'tick' });

// A report built synchronously: while it runs, the loop answers nobody.
const report = cron.schedule(process.env.REPORT_SCHEDULE || '0 3 * * *', () => {
  console.log('report start');
  const end = Date.now() + Number(process.env.REPORT_MS || 200);
  while (Date.now() < end);
  console.log('report done');
}, { name: 'report', noOverlap: true });

console.log(`ready pid=${process.pid} file=${pulse.file}`);

process.once('SIGTERM', () => {
  tick.stop();
  report.stop();
  pulse.stop();
});
