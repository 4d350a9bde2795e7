'use strict';
// 9. The endpoint (option listen): scrape latency of /metrics with the loop
// idle and blocked, ours against prom-client's default metrics on a Node http
// server in the same process; /livez requests per second against a Node http
// server returning the same bytes (wrk); private RSS added by listen.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { tempDir } = require('../lib/proc');
const { PKG } = require('../lib/contenders');
const { median, percentile, verdict, fmtMs, fmtBytes } = require('../lib/stats');

const RSS_TARGET = 100 * 1024;

// A worker: a native pulse (with or without listen), prom-client on a Node
// http server, a Node http server returning a fixed body; stdin commands:
// "block <ms>", "measure" (prints its anonymous memory).
const CHILD = `
const http = require('node:http');
const fs = require('node:fs');
const opts = JSON.parse(process.argv[1]);
const pulse = require(opts.pkg).start({ strategy: 'native', file: opts.file, interval: 1, maxStall: 2, logStalls: false, ...(opts.listen ? { listen: '127.0.0.1:0' } : {}) });
let promPort = 0, fixedPort = 0, fixed = 'x';
const ready = () => process.stdout.write(JSON.stringify({ listen: pulse.status().listen, promPort, fixedPort }) + '\\n');
if (opts.servers) {
  const client = require(opts.promClient);
  client.collectDefaultMetrics();
  const prom = http.createServer(async (req, res) => { res.setHeader('Content-Type', client.register.contentType); res.end(await client.register.metrics()); });
  const same = http.createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }); res.end(fixed); });
  prom.listen(0, '127.0.0.1', () => { promPort = prom.address().port; same.listen(0, '127.0.0.1', () => { fixedPort = same.address().port; ready(); }); });
} else ready();
function crunch(ms) { const end = Date.now() + ms; while (Date.now() < end); }
let pending = '';
process.stdin.on('data', (d) => {
  pending += d;
  let i;
  while ((i = pending.indexOf('\\n')) >= 0) {
    const [cmd, arg] = pending.slice(0, i).split(' ');
    pending = pending.slice(i + 1);
    if (cmd === 'block') { process.stdout.write('blocking\\n'); crunch(Number(arg)); process.stdout.write('unblocked\\n'); }
    if (cmd === 'fixed') fixed = Buffer.from(arg, 'base64').toString();
    if (cmd === 'measure') {
      if (global.gc) global.gc();
      const rollup = fs.readFileSync('/proc/self/smaps_rollup', 'utf8');
      const kb = (name) => Number(new RegExp('^' + name + ':\\\\s+(\\\\d+) kB', 'm').exec(rollup)[1]) * 1024;
      process.stdout.write(JSON.stringify({ anon: kb('Anonymous'), rss: kb('Rss') }) + '\\n');
    }
  }
});
`;

function startChild(opts) {
  const dir = tempDir('endpoint');
  const child = spawn(process.execPath, ['--expose-gc', '-e', CHILD, JSON.stringify({ pkg: PKG, file: path.join(dir, 'health'),
    promClient: path.join(PKG, 'node_modules', 'prom-client'), ...opts })], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  const lines = () => out.split('\n').filter(Boolean);
  const next = async (n, timeoutMs = 20000) => {
    const end = Date.now() + timeoutMs;
    while (lines().length < n) {
      if (Date.now() > end) throw new Error(`the endpoint bench child printed ${lines().length} of ${n} lines: ${out}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return lines()[n - 1];
  };
  return {
    child,
    next,
    count: () => lines().length,
    send: (line) => child.stdin.write(`${line}\n`),
    stop: () => {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function get(port, urlPath, timeoutMs) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => {
        clearTimeout(timer);
        resolve({ ok: res.statusCode === 200, ms: performance.now() - t0, body });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    req.on('error', () => {
      clearTimeout(timer);
      resolve({ ok: false, ms: performance.now() - t0 });
    });
  });
}

async function scrapes(port, urlPath, n, timeoutMs) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await get(port, urlPath, timeoutMs));
  return out;
}

const latency = (runs) => {
  const ok = runs.filter((r) => r.ok).map((r) => r.ms);
  if (ok.length === 0) return `all ${runs.length} timed out (1 s)`;
  const failed = runs.length - ok.length;
  return `p50 ${fmtMs(median(ok))}, p99 ${fmtMs(percentile(ok, 99))}${failed ? `; ${failed} of ${runs.length} timed out` : ''}`;
};

function wrk(url, seconds) {
  const r = spawnSync('wrk', ['-t1', '-c16', `-d${seconds}s`, url], { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (r.error || r.status !== 0) return null;
  return Number(/Requests\/sec:\s+([\d.]+)/.exec(r.stdout)?.[1]);
}

async function endpoint(ctx) {
  const quick = ctx.quick;
  const n = quick ? 20 : 50;
  const blockMs = quick ? 3000 : 5000;
  ctx.log(`9. endpoint: /metrics scrape latency idle and blocked (${n} scrapes), /livez requests/s (wrk), RSS added by listen`);
  const w = startChild({ listen: true, servers: true });
  const rows = [];
  const data = {};
  try {
    const { listen, promPort, fixedPort } = JSON.parse(await w.next(1));
    const port = Number(listen.split(':')[1]);
    const idleOurs = await scrapes(port, '/metrics', n, 1000);
    const idleProm = await scrapes(promPort, '/metrics', n, 1000);
    w.send(`block ${blockMs}`);
    await w.next(2);
    const blockedOurs = await scrapes(port, '/metrics', quick ? 5 : 10, 1000);
    const blockedProm = await scrapes(promPort, '/metrics', 2, 1000);
    await w.next(3, blockMs + 20000);
    data.scrape = { idleOurs, idleProm, blockedOurs, blockedProm };
    ctx.log(`  idle: ours ${latency(idleOurs)}; prom-client ${latency(idleProm)}`);
    ctx.log(`  blocked: ours ${latency(blockedOurs)}; prom-client ${latency(blockedProm)}`);
    rows.push({
      id: '9',
      measure: '/metrics scrape latency, loop idle',
      cells: { native: latency(idleOurs), plain: `prom-client: ${latency(idleProm)}` },
      target: 'answered',
      verdict: idleOurs.every((r) => r.ok) ? 'PASS' : 'MISS',
    });
    rows.push({
      id: '9',
      measure: `/metrics scrape latency, loop blocked for ${blockMs / 1000} s`,
      cells: { native: latency(blockedOurs), plain: `prom-client: ${latency(blockedProm)}` },
      target: 'answered while blocked',
      verdict: blockedOurs.every((r) => r.ok) ? 'PASS' : 'MISS',
      note: 'prom-client serves from the event loop it measures: a stall is a gap',
    });
    // /livez against a Node http server returning the same bytes.
    const livez = await get(port, '/livez', 1000);
    w.send(`fixed ${Buffer.from(livez.body).toString('base64')}`);
    const seconds = quick ? 2 : 5;
    const ours = wrk(`http://${listen}/livez`, seconds);
    const node = wrk(`http://127.0.0.1:${fixedPort}/livez`, seconds);
    data.rps = { ours, node };
    ctx.log(`  /livez: ours ${ours ?? 'n/a'} requests/s, Node http ${node ?? 'n/a'} requests/s`);
    rows.push({
      id: '9',
      measure: '/livez requests per second (wrk -c 16), loop idle',
      cells: ours === null ? { native: 'pending (wrk is not installed)' } : { native: `${Math.round(ours)} req/s`, plain: `Node http, same bytes: ${Math.round(node)} req/s` },
      target: 'reported',
      verdict: ours === null ? 'pending' : 'PASS',
      note: 'each of ours reads the file and its record as `check` does; one connection per request',
    });
  } finally {
    w.stop();
  }
  // Private RSS added by listen: fresh processes with and without, each after one scrape.
  const rounds = quick ? 2 : 4;
  const anon = { with: [], without: [] };
  for (let r = 0; r < rounds; r++) {
    for (const listen of r % 2 ? [true, false] : [false, true]) {
      const c = startChild({ listen, servers: false });
      try {
        const { listen: address } = JSON.parse(await c.next(1));
        if (address) {
          const port = Number(address.split(':')[1]);
          await get(port, '/metrics', 2000);
          await get(port, '/livez', 2000);
        }
        c.send('measure');
        anon[listen ? 'with' : 'without'].push(JSON.parse(await c.next(2)).anon);
      } finally {
        c.stop();
      }
    }
  }
  const added = median(anon.with) - median(anon.without);
  data.rss = { anon, added };
  ctx.log(`  private (anonymous) RSS added by listen: ${fmtBytes(added)} (median of ${rounds})`);
  rows.push({
    id: '9',
    measure: `private (anonymous) RSS added by listen (median of ${rounds} fresh processes)`,
    cells: { native: fmtBytes(added) },
    target: '≤ 100 KB',
    verdict: verdict(added, { op: '<=', limit: RSS_TARGET }),
    note: 'the server thread\'s stack pages touched, its buffers, one listening socket',
  });
  return { rows, data };
}

module.exports = { endpoint };
