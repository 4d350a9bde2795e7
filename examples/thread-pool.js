'use strict';
// A worker_threads pool behind an HTTP front: the main thread accepts
// requests and hands CPU work to THREADS pool threads. Each thread (main
// included) runs its own pulse on /tmp/pool-health-{threadId}, so a pool
// thread stuck in a task is seen even while the main thread answers fine.
//
//   THREADS=3 PORT=3000 node examples/thread-pool.js
//   curl '127.0.0.1:3000/crunch?ms=200'
const http = require('node:http');
const { Worker, isMainThread, parentPort, threadId } = require('node:worker_threads');
const { start } = require('celery-pulse-native');

const file = process.env.CELERY_PULSE_HEALTHCHECK_FILE || '/tmp/pool-health-{threadId}';

if (isMainThread) {
  const pulse = start({ file });
  const idle = [];
  const waiting = [];
  const threads = [];
  const size = Number(process.env.THREADS || 3);

  const dispatch = () => {
    while (idle.length > 0 && waiting.length > 0) {
      const thread = idle.shift();
      const { ms, reply } = waiting.shift();
      console.log(`thread ${thread.threadId} crunching for ${ms} ms`);
      thread.once('message', (result) => {
        reply(result);
        idle.push(thread);
        dispatch();
      });
      thread.postMessage({ ms });
    }
  };

  for (let i = 0; i < size; i++) {
    const thread = new Worker(__filename);
    threads.push(thread);
    thread.once('message', (ready) => {
      console.log(`thread ${thread.threadId} ready file=${ready.file}`);
      idle.push(thread);
      dispatch();
    });
    thread.on('error', (error) => console.error(`thread ${thread.threadId} failed: ${error.message}`));
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname !== '/crunch') {
      res.end(`main thread ${threadId}\n`);
      return;
    }
    const ms = Number(url.searchParams.get('ms') || 100);
    waiting.push({ ms, reply: (result) => res.end(`thread ${result.threadId} done\n`) });
    dispatch();
  });
  server.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
    console.log(`main pid=${process.pid} file=${pulse.file}`);
  });

  process.once('SIGTERM', async () => {
    server.close();
    await Promise.all(threads.map((thread) => thread.terminate())); // their pulses stop in cleanup hooks
    pulse.stop();
  });
} else {
  // A pool thread: its own pulse, answered by its own event loop.
  const pulse = start({ file });
  parentPort.on('message', ({ ms }) => {
    const end = Date.now() + ms;
    while (Date.now() < end); // CPU work: this thread's loop is busy until it returns
    parentPort.postMessage({ threadId });
  });
  parentPort.postMessage({ file: pulse.file });
}
