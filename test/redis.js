'use strict';
// A real Redis for the integration tests: started on 127.0.0.1 on a free port,
// with no persistence, and shut down when the test file ends. Tests skip,
// saying why, only when redis-server is not installed.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
}

/** A skip reason for test(), or false when redis-server and redis-cli are there. */
const REDIS_SKIP = onPath('redis-server') && onPath('redis-cli')
  ? false
  : 'redis-server is not installed (apt-get install redis-server; .ci/run installs it)';

/** A port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function cli(port, ...args) {
  return spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout: 10000 });
}

/**
 * Starts redis-server on `port` (a free one when omitted) and waits until it
 * answers PING. Returns { port, url, stop() }; stop() is idempotent.
 */
async function startRedis(port) {
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-redis-'));
    const started = spawnSync('redis-server', [
      '--port', String(p), '--bind', '127.0.0.1', '--daemonize', 'yes', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--pidfile', path.join(dir, 'redis.pid'), '--logfile', path.join(dir, 'redis.log'),
    ], { encoding: 'utf8', timeout: 10000 });
    const deadline = Date.now() + 10000;
    let up = false;
    while (started.status === 0 && Date.now() < deadline) {
      if (cli(p, 'ping').stdout.trim() === 'PONG') {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (up) {
      let stopped = false;
      return {
        port: p,
        url: `redis://127.0.0.1:${p}`,
        stop() {
          if (stopped) return;
          stopped = true;
          cli(p, 'shutdown', 'nosave');
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    const log = fs.existsSync(path.join(dir, 'redis.log')) ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8') : '';
    fs.rmSync(dir, { recursive: true, force: true });
    // Another process may have taken the port between the probe and the start.
    if (port !== undefined || attempt >= 3) {
      throw new Error(`redis-server did not start on 127.0.0.1:${p}: ${started.stderr}${started.stdout}${log}`);
    }
  }
}

module.exports = { REDIS_SKIP, startRedis, freePort, redisCli: cli };
