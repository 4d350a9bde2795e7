'use strict';
// The demo's worker. It has no heartbeat code at all: its pulse was started by
// `--require celery-pulse-native/register` from the CELERY_PULSE_* env vars.
// It takes orders on stdin: "block <ms>" runs a synchronous job that keeps the
// event loop busy for that long; "exit" (or the end of stdin) ends it.
const readline = require('node:readline');
// The pulse the preload started: each job runs inside pulse.track(), so a
// stall's record names the job the worker is stuck in.
const { pulse } = require('celery-pulse-native/register');

let jobs = 0;
function blockFor(ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // A synchronous job: no timer, no I/O callback, no answer to the pulse.
  }
}

const orders = readline.createInterface({ input: process.stdin });
orders.on('line', (line) => {
  const [order, ms] = line.trim().split(/\s+/);
  if (order === 'block') {
    pulse.track(`job report #${++jobs} (${ms} ms)`, () => blockFor(Number(ms)));
    process.stdout.write('done\n');
  } else if (order === 'exit') {
    orders.close();
  }
});
process.stdout.write('ready\n');
