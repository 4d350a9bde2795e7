'use strict';
// A real Prometheus scrapes two preloaded workers every second while one is
// stuck for 20 s: every scrape of its endpoint succeeds and shows the stall,
// an alert fires and resolves; prom-client's default metrics served by a Node
// http server in the same stuck process fail every scrape meanwhile (the
// reason the endpoint exists).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { PKG, STRATEGY, tmpDir, sleep } = require('./helpers');
const { which, freePort } = require('./endpoint-helpers');

const PROMETHEUS = which('prometheus');
const SKIP = PROMETHEUS ? false : 'prometheus is not installed (apt-get install --no-install-recommends prometheus; .ci/run installs it)';

const APP = `
const http = require('node:http');
const client = require(${JSON.stringify(path.join(PKG, 'node_modules', 'prom-client'))});
const { pulse } = require(${JSON.stringify(path.join(PKG, 'dist', 'register.js'))});
client.collectDefaultMetrics();
const promPort = Number(process.env.PROM_CLIENT_PORT || 0);
if (promPort) {
  http.createServer(async (req, res) => {
    res.setHeader('Content-Type', client.register.contentType);
    res.end(await client.register.metrics());
  }).listen(promPort, '127.0.0.1');
}
function crunchJob(ms) { const end = Date.now() + ms; while (Date.now() < end); }
process.stdout.write('listen ' + pulse.status().listen + '\\n');
if (process.env.BUSY) {
  // Busy in blocks shorter than maxStall, all the time.
  const work = () => { crunchJob(Number(process.env.BUSY)); setTimeout(work, 100); };
  work();
}
process.stdin.on('data', (d) => { process.stdout.write('blocking\\n'); crunchJob(Number(d)); process.stdout.write('unblocked\\n'); });
`;

function startApp(t, dir, name, env) {
  const app = path.join(dir, `${name}.js`);
  fs.writeFileSync(app, APP);
  const child = spawn(process.execPath, [app], {
    env: {
      ...process.env,
      CELERY_PULSE_STRATEGY: STRATEGY,
      CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, `${name}.health`),
      CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5',
      CELERY_PULSE_MAX_STALL: '2',
      CELERY_PULSE_LOG_STALLS: '0',
      ...env,
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  let gone = false;
  child.on('exit', () => (gone = true));
  t.after(() => { if (!gone) child.kill('SIGKILL'); });
  return { child, out: () => stdout, err: () => stderr, gone: () => gone };
}

async function until(what, fn, timeoutMs, stepMs = 200) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

function api(port, pathAndQuery) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathAndQuery, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d)).on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(new Error(`${pathAndQuery}: ${res.statusCode} ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('Prometheus API timeout')));
    req.on('error', reject);
  });
}

/** An instant query: the result vector ([] when none); `at` in Unix seconds. */
async function query(port, expr, at) {
  const q = `/api/v1/query?query=${encodeURIComponent(expr)}${at ? `&time=${at}` : ''}`;
  const reply = await api(port, q);
  if (reply.status !== 'success') throw new Error(`${expr}: ${JSON.stringify(reply)}`);
  return reply.data.result;
}

const value = (result) => (result.length > 0 ? Number(result[0].value[1]) : undefined);

test('a real Prometheus: a worker stuck for 20 s stays scraped, stalled, alerted; prom-client goes dark', { skip: SKIP, timeout: 180000 }, async (t) => {
  const dir = tmpDir(t);
  const [stuckPort, busyPort, promClientPort, promPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const stuck = startApp(t, dir, 'stuck', { CELERY_PULSE_LISTEN: `127.0.0.1:${stuckPort}`, PROM_CLIENT_PORT: String(promClientPort) });
  const busy = startApp(t, dir, 'busy', { CELERY_PULSE_LISTEN: `127.0.0.1:${busyPort}`, BUSY: '1000' });
  for (const w of [stuck, busy]) await until('a worker listens', () => /listen \S+/.test(w.out()) || w.gone(), 20000, 20);
  assert.match(stuck.out(), new RegExp(`listen 127\\.0\\.0\\.1:${stuckPort}`), stuck.err());
  assert.match(busy.out(), new RegExp(`listen 127\\.0\\.0\\.1:${busyPort}`), busy.err());

  fs.writeFileSync(path.join(dir, 'rules.yml'), [
    'groups:',
    '  - name: pulse',
    '    interval: 1s',
    '    rules:',
    '      - alert: EventLoopStalled',
    '        expr: celery_pulse_stalled == 1',
    '        labels: { severity: page }',
    '        annotations: { summary: "{{ $labels.worker }}: event loop stalled" }',
    '',
  ].join('\n'));
  fs.writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }',
    `rule_files: [${JSON.stringify(path.join(dir, 'rules.yml'))}]`,
    'scrape_configs:',
    '  - job_name: pulse',
    '    static_configs:',
    `      - { targets: ["127.0.0.1:${stuckPort}"], labels: { worker: stuck } }`,
    `      - { targets: ["127.0.0.1:${busyPort}"], labels: { worker: busy } }`,
    '  - job_name: prom-client',
    '    static_configs:',
    `      - { targets: ["127.0.0.1:${promClientPort}"], labels: { worker: stuck } }`,
    '',
  ].join('\n'));
  const prom = spawn(PROMETHEUS, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promLog = '';
  prom.stderr.setEncoding('utf8').on('data', (d) => (promLog += d));
  let promGone = false;
  prom.on('exit', () => (promGone = true));
  t.after(() => { if (!promGone) prom.kill('SIGKILL'); });

  // Every target scraped up at least 3 times.
  await until('three good scrapes of each target', async () => {
    if (promGone) throw new Error(`prometheus exited: ${promLog}`);
    try {
      const r = await query(promPort, 'min(sum_over_time(up[1m])) >= 3');
      return r.length === 1 && (await query(promPort, 'count(up)')).length === 1 && value(await query(promPort, 'count(up)')) === 3;
    } catch {
      return false; // not answering yet
    }
  }, 60000);

  const t0 = Date.now() / 1000;
  stuck.child.stdin.write('20000\n');
  await until('the stuck worker blocks', () => /blocking/.test(stuck.out()), 10000, 10);

  // While it lasts: stalled, the stall seconds growing, the frame named, the alert firing.
  await until('celery_pulse_stalled is 1', async () => value(await query(promPort, 'celery_pulse_stalled{worker="stuck"}')) === 1, 15000);
  await until('increase(celery_pulse_stall_seconds_total[5s]) >= 4',
    async () => value(await query(promPort, 'increase(celery_pulse_stall_seconds_total{worker="stuck"}[5s])')) >= 4, 15000);
  if (STRATEGY === 'native') {
    const frame = await until('celery_pulse_stall_frame_info names the stuck function',
      async () => (await query(promPort, 'celery_pulse_stall_frame_info{worker="stuck"}'))[0], 10000);
    assert.equal(frame.metric.function, 'crunchJob');
    assert.equal(frame.metric.file, path.join(dir, 'stuck.js'));
  }
  const alert = await until('the alert fires', async () => {
    const reply = await api(promPort, '/api/v1/alerts');
    return reply.data.alerts.find((a) => a.labels.alertname === 'EventLoopStalled' && a.state === 'firing');
  }, 15000);
  assert.equal(alert.labels.worker, 'stuck');
  assert.equal(/unblocked/.test(stuck.out()), false, 'all of this while the loop is still stuck');

  // Recovery: the alert resolves, stalled goes back to 0.
  await until('the worker answers again', () => /unblocked/.test(stuck.out()), 30000, 50);
  const t1 = Date.now() / 1000;
  await until('celery_pulse_stalled back to 0', async () => value(await query(promPort, 'celery_pulse_stalled{worker="stuck"}')) === 0, 15000);
  await until('the alert resolves', async () => {
    const reply = await api(promPort, '/api/v1/alerts');
    return !reply.data.alerts.some((a) => a.labels.alertname === 'EventLoopStalled');
  }, 15000);

  // Over the stall (from 2 s in to 1 s before its end): every scrape of the
  // endpoint succeeded, every scrape of prom-client failed.
  const from = t0 + 2;
  const to = t1 - 1;
  const range = `${Math.floor(to - from)}s`;
  assert.ok(to - from >= 15, `the stall lasted ${t1 - t0} s`);
  assert.equal(value(await query(promPort, `min_over_time(up{job="pulse",worker="stuck"}[${range}])`, to)), 1, 'every scrape of the endpoint succeeded');
  assert.ok(value(await query(promPort, `count_over_time(up{job="pulse",worker="stuck"}[${range}])`, to)) >= 10, 'scraped every second');
  assert.equal(value(await query(promPort, `max_over_time(up{job="prom-client"}[${range}])`, to)), 0, 'every prom-client scrape failed');
  assert.ok(value(await query(promPort, `count_over_time(up{job="prom-client"}[${range}])`, to)) >= 10);
  // The busy worker never showed a stall.
  assert.equal(value(await query(promPort, `max_over_time(celery_pulse_stalled{worker="busy"}[${Math.ceil(Date.now() / 1000 - t0 + 10)}s])`)), 0);
  assert.equal(value(await query(promPort, `min_over_time(up{worker="busy"}[${Math.ceil(Date.now() / 1000 - t0 + 10)}s])`)), 1);
  prom.kill('SIGTERM');
});
