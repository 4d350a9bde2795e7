'use strict';
// A cluster app: the primary forks WORKERS HTTP workers and replaces any that
// dies. Every process keeps its own file, /tmp/app-health-{workerId} by
// default ({workerId}: 0 for the primary, the cluster worker id in a worker),
// so a probe of all files catches one stuck worker that a single shared file
// would hide behind its live siblings.
//
//   WORKERS=4 PORT=3000 node examples/cluster.js
//   npx celery-pulse-native check --all '/tmp/app-health-*'
const cluster = require('node:cluster');
const http = require('node:http');
const { start } = require('celery-pulse-native');

// Per-process file unless CELERY_PULSE_HEALTHCHECK_FILE says otherwise.
const file = process.env.CELERY_PULSE_HEALTHCHECK_FILE || '/tmp/app-health-{workerId}';

if (cluster.isPrimary) {
  const pulse = start({ file });
  let stopping = false;
  const size = Number(process.env.WORKERS || 4);
  cluster.on('fork', (worker) => {
    // A worker that is ending closes its channel, and the primary's next
    // message to it (say, that its server is listening) fails with EPIPE. An
    // 'error' nobody handles would end the primary; its 'exit' follows anyway.
    worker.on('error', (error) => {
      if (!stopping) console.error(`worker ${worker.id}: ${error.message}`);
    });
  });
  for (let i = 0; i < size; i++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    console.log(`worker ${worker.id} died (${signal || code}); forking a replacement`);
    cluster.fork();
  });
  process.once('SIGTERM', () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    const done = () => Object.keys(cluster.workers).length === 0 && pulse.stop();
    cluster.on('exit', done);
    done();
  });
  console.log(`primary pid=${process.pid} file=${pulse.file}`);
} else {
  const pulse = start({ file });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    if (url.pathname === '/crunch') {
      // A handler that computes synchronously: its worker's loop is stuck
      // until it returns, while the other workers keep serving.
      const ms = Number(url.searchParams.get('ms') || 100);
      console.log(`worker ${cluster.worker.id} crunching for ${ms} ms`);
      const end = Date.now() + ms;
      while (Date.now() < end);
    }
    res.end(`worker ${cluster.worker.id}\n`);
  });
  server.listen(Number(process.env.PORT || 3000), '127.0.0.1', () => {
    console.log(`worker ${cluster.worker.id} pid=${process.pid} file=${pulse.file}`);
  });
  process.once('SIGTERM', () => {
    pulse.stop(); // a templated file is removed: a stopped worker leaves nothing behind
    server.close();
    process.disconnect();
  });
}
