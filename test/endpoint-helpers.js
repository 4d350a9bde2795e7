'use strict';
// Helpers for the endpoint tests: a kubelet-style HTTP probe, a raw socket
// client for bad input, and a child process whose event loop the test can
// block on demand (it listens, prints its address, and blocks in `crunch`
// for the milliseconds written to its stdin).
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { PKG, STRATEGY } = require('./helpers');

/**
 * GET (or `method`) `path` as the kubelet's httpGet probe does: 1 s timeout,
 * at most 10 KiB of body read, 200-399 is success. Resolves with
 * { status, ok, body, headers, ms } or { error, ms }.
 */
function kubeletProbe(address, urlPath, { method = 'GET', timeoutMs = 1000 } = {}) {
  const { host, port } = splitAddress(address);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ...value, ms: performance.now() - t0 });
    };
    const req = http.request({ host, port, path: urlPath, method, agent: false }, (res) => {
      let body = Buffer.alloc(0);
      res.on('data', (chunk) => {
        if (body.length < 10240) body = Buffer.concat([body, chunk]).subarray(0, 10240);
      });
      res.on('end', () => finish({ status: res.statusCode, ok: res.statusCode >= 200 && res.statusCode < 400, body: body.toString('utf8'), headers: res.headers }));
      res.on('error', (error) => finish({ error }));
    });
    const timer = setTimeout(() => {
      req.destroy(new Error('timeout'));
      finish({ error: new Error('timeout') });
    }, timeoutMs);
    req.on('error', (error) => finish({ error }));
    req.end();
  });
}

/** The whole body of a GET, with a hard timeout (rejects on failure). */
async function fetchText(address, urlPath, timeoutMs = 5000) {
  const { host, port } = splitAddress(address);
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Sends `bytes` on a fresh connection (then keeps it open, or half-closes it
 * with `end`), and collects what comes back until the server closes or
 * `timeoutMs`. Resolves with { data, closed, reset, ms }.
 */
function rawExchange(address, bytes, { timeoutMs = 5000, end = false } = {}) {
  const { host, port } = splitAddress(address);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let data = Buffer.alloc(0);
    let reset = false;
    let settled = false;
    const finish = (closed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: data.toString('latin1'), closed, reset, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('connect', () => {
      socket.write(bytes, () => {
        if (end) socket.end();
      });
    });
    socket.on('data', (d) => (data = Buffer.concat([data, d])));
    socket.on('error', (error) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
      finish(true);
    });
    socket.on('close', () => finish(true));
  });
}

function splitAddress(address) {
  const colon = address.lastIndexOf(':');
  let host = address.slice(0, colon);
  if (host.startsWith('[')) host = host.slice(1, -1);
  if (host === '' || host === '::' || host === '0.0.0.0') host = '127.0.0.1';
  return { host, port: Number(address.slice(colon + 1)) };
}

/**
 * A child that pulses `file` with `options` plus listen (default
 * 127.0.0.1:0) and blocks its loop in `crunch(ms)` for each number written to
 * its stdin; `script` replaces the default child source file (for odd file
 * names). Returns { address, child, block(ms), blocked(), exited, stop() }.
 */
async function startBlockable(t, file, options = {}, { scriptPath, env = {}, functionName = 'crunch', wrap = [] } = {}) {
  const source =
    `const pulse = require(${JSON.stringify(PKG)});\n` +
    `const p = pulse.start(${JSON.stringify({ strategy: STRATEGY, file, listen: '127.0.0.1:0', logStalls: false, ...options })});\n` +
    'process.stdout.write(`listen ${p.status().listen}\\n`);\n' +
    // A method named by a computed key: V8 names the frame after it, so the
    // name may hold any character.
    `const stuck = { [${JSON.stringify(functionName)}](ms) { const end = Date.now() + ms; while (Date.now() < end); } };\n` +
    'const crunch = Object.values(stuck)[0];\n' +
    'let pending = "";\n' +
    'process.stdin.on("data", (d) => { pending += d; let i; while ((i = pending.indexOf("\\n")) >= 0) { const ms = Number(pending.slice(0, i)); pending = pending.slice(i + 1);\n' +
    '  process.stdout.write("blocking\\n"); crunch(ms); process.stdout.write("unblocked\\n"); } });\n';
  const script = scriptPath ?? path.join(path.dirname(file), 'blockable.js');
  fs.mkdirSync(path.dirname(script), { recursive: true });
  fs.writeFileSync(script, source);
  const argv = [...wrap, process.execPath, script];
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  exited.then(() => (gone = true));
  t.after(() => { if (!gone) child.kill('SIGKILL'); });
  const deadline = Date.now() + 20000;
  while (!/listen (\S+)\n/.test(stdout)) {
    if (gone || Date.now() > deadline) throw new Error(`the child did not listen\nstdout: ${stdout}\nstderr: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const address = /listen (\S+)\n/.exec(stdout)[1];
  return {
    address,
    child,
    exited,
    output: () => ({ stdout, stderr }),
    /** Blocks the child's loop for `ms` (resolves once it started blocking). */
    async block(ms) {
      const before = stdout.split('blocking\n').length;
      child.stdin.write(`${ms}\n`);
      const end = Date.now() + 10000;
      while (stdout.split('blocking\n').length === before) {
        if (Date.now() > end) throw new Error(`the child did not start blocking\n${stderr}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    },
    unblockedCount: () => stdout.split('unblocked\n').length - 1,
    async stop() {
      if (!gone) child.kill('SIGTERM');
      return exited;
    },
  };
}

const BIN = path.join(PKG, 'bin', 'celery-pulse-native.js');

/** `celery-pulse-native check --file F --max-age S`, asynchronously: { status, stdout }. */
function checkAsync(file, maxAge) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('CELERY_PULSE_')) delete env[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'check', '--file', file, '--max-age', String(maxAge)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout });
    });
  });
}

// All CPUs' time since boot from /proc/stat: busy and total, in ticks
// (user, nice, system, idle, iowait, irq, softirq, steal; guest time is
// already counted in user).
function cpuTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/**
 * Starts measuring how busy the host's CPUs are; the function returned gives
 * the busy share (0 to 1) since. Whether the host is quiet enough for a
 * bound that only a quiet host can promise: other processes keeping the
 * cores busy show here even when a few probes happen to be fast.
 */
function hostLoad() {
  const from = cpuTicks();
  return () => {
    const to = cpuTicks();
    return to.total > from.total ? (to.busy - from.busy) / (to.total - from.total) : 0;
  };
}

/** Which tool is on PATH, or null. */
function which(tool) {
  const result = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : null;
}

/** A free TCP port on 127.0.0.1 (bound and closed: a small race, as any test port). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

module.exports = { kubeletProbe, fetchText, rawExchange, splitAddress, startBlockable, checkAsync, which, freePort, hostLoad };
