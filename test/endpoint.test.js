'use strict';
// The endpoint (option listen): /livez, /metrics and /status served off the
// event loop, its bad input, its bounds, and its agreement with `check`.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PKG, STRATEGY, SANITIZED, pulse, startPulse, tmpDir, waitFor, threadCount, runChild, assertExit } = require('./helpers');
const { kubeletProbe, fetchText, rawExchange, startBlockable, checkAsync, which, hostLoad } = require('./endpoint-helpers');
const { FAMILIES } = require('../dist/contract/metrics');

const PROCESS_FAMILIES = ['process_cpu_seconds_total', 'process_start_time_seconds', 'process_resident_memory_bytes',
  'process_virtual_memory_bytes', 'process_open_fds', 'process_max_fds'];
const PROMTOOL = which('promtool');
const NO_PROMTOOL = PROMTOOL ? false : 'promtool is not installed (apt-get install prometheus; .ci/run installs it)';

/** The families of an exposition text, in order, as {name, type}. */
function families(text) {
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => ({ name: m[1], type: m[2] }));
}

/** The value of a sample without labels (or with the given label text). */
function sample(text, name, labels = '') {
  const re = new RegExp(`^${name}${labels ? `\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\}` : ''} (\\S+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

function promtool(text) {
  return spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20000 });
}

/** check's line and /livez's body, with every number made '#': the wording must match. */
const shape = (line) => line.replace(/-?\d+(\.\d+)?/g, '#');

test('listen: bad values throw a coded error naming the option or env var, before anything starts', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'never');
  for (const value of [999999, -1, 1.5, '999999', 'host:', '[::1', 'localhost:80', '1.2.3.4:', ':80', '[::1]', '1.2.3.4:99999', true, {}, '']) {
    assert.throws(() => startPulse({ file, listen: value }), (error) => {
      assert.equal(error.code, 'ERR_PULSE_INVALID_OPTION', String(value));
      assert.match(error.message, /option "listen"/);
      assert.ok(error.message.includes(JSON.stringify(value) ?? String(value)) || error.message.includes(String(value)), error.message);
      return true;
    });
  }
  for (const value of ['999999', 'host:', '[::1', 'x']) {
    const result = runChild(`try { pulse.start({ strategy: STRATEGY, file: ${JSON.stringify(file)} }); console.log('started'); } catch (e) { console.log(e.code, e.message); }`,
      { env: { CELERY_PULSE_LISTEN: value } });
    assertExit(result, 0);
    assert.match(result.stdout, /^ERR_PULSE_INVALID_ENV .*env CELERY_PULSE_LISTEN/);
    assert.ok(result.stdout.includes(JSON.stringify(value)), result.stdout);
  }
  assert.equal(fs.existsSync(file), false);
});

test('listen: a port in use throws ERR_PULSE_LISTEN with the address and EADDRINUSE, with nothing started', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.after(() => taken.close());
  const { port } = taken.address();
  const threads = threadCount();
  assert.throws(() => startPulse({ file, listen: `127.0.0.1:${port}` }), (error) => {
    assert.equal(error.code, 'ERR_PULSE_LISTEN');
    assert.equal(error.syscallCode, 'EADDRINUSE');
    assert.equal(error.address, `127.0.0.1:${port}`);
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*EADDRINUSE`));
    return true;
  });
  assert.equal(fs.existsSync(file), false, 'the file is not touched');
  // (The worker strategy's endpoint thread, started to bind, ends shortly after.)
  await waitFor(() => threadCount() === threads, 5000);
  // The same file can be pulsed right after: nothing was claimed.
  const p = startPulse({ file, interval: 1 });
  p.stop();
});

test('listen: a privileged port without the right throws ERR_PULSE_LISTEN with EACCES', (t) => {
  const floor = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  if (floor === 0) return t.skip('this kernel lets anyone bind low ports (ip_unprivileged_port_start is 0)');
  const dir = tmpDir(t);
  fs.chmodSync(dir, 0o777);
  const file = path.join(dir, 'health');
  const source = `try { pulse.start({ strategy: STRATEGY, file: ${JSON.stringify(file)}, listen: '127.0.0.1:${floor - 1}' }); console.log('started'); }` +
    ' catch (e) { console.log(e.code, e.syscallCode, e.message); }';
  let result;
  if (process.getuid() === 0) {
    // A world-readable copy with this build, run as nobody.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pkg-'));
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    for (const entry of ['package.json', 'dist', 'prebuilds', 'build/Release/celery_pulse.node', 'node_modules/node-gyp-build']) {
      if (fs.existsSync(path.join(PKG, entry))) fs.cpSync(path.join(PKG, entry), path.join(root, entry), { recursive: true });
    }
    spawnSync('chmod', ['-R', 'a+rX', root]);
    result = runChild(source, { uid: 65534, gid: 65534, pkg: root, cwd: '/' });
  } else {
    result = runChild(source);
  }
  assertExit(result, 0);
  assert.match(result.stdout, new RegExp(`^ERR_PULSE_LISTEN EACCES .*127\\.0\\.0\\.1:${floor - 1}`));
  assert.equal(fs.existsSync(file), false);
});

test('/livez, /metrics, /status, pulse.metrics() and status().listen on an idle pulse', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const p = startPulse({ file, interval: 0.5, listen: '127.0.0.1:0' });
  t.after(() => p.stop());
  const address = p.status().listen;
  assert.match(address, /^127\.0\.0\.1:\d+$/);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).listen, address, "the record's listen");

  const livez = await fetchText(address, '/livez');
  assert.equal(livez.status, 200);
  assert.equal(livez.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(livez.headers.connection, 'close');
  const checked = await checkAsync(file, 1);
  assert.equal(checked.status, 0);
  assert.equal(shape(livez.body), shape(checked.stdout));

  const metrics = await fetchText(address, '/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.deepEqual(families(metrics.body).map((f) => f.name), [...FAMILIES.map((f) => f[0]), ...PROCESS_FAMILIES]);
  assert.deepEqual(families(metrics.body).slice(0, FAMILIES.length).map((f) => f.type), FAMILIES.map((f) => f[1]));
  for (const [name, , help] of FAMILIES) assert.ok(metrics.body.includes(`# HELP ${name} ${help}\n`), name);
  assert.match(metrics.body, new RegExp(`^celery_pulse_info\\{version="[^"]+",strategy="${STRATEGY}",runtime="node [^"]+",file="${file}"\\} 1$`, 'm'));
  assert.equal(sample(metrics.body, 'celery_pulse_stalled'), 0);
  assert.equal(sample(metrics.body, 'celery_pulse_interval_seconds'), 0.5);
  assert.ok(sample(metrics.body, 'celery_pulse_beats_total') >= 1);
  assert.ok(sample(metrics.body, 'process_resident_memory_bytes') > 1e6);
  assert.ok(Math.abs(sample(metrics.body, 'process_start_time_seconds') - (Date.now() / 1000 - process.uptime())) < 5);
  // pulse.metrics(): the same families, from the JS side.
  assert.deepEqual(families(p.metrics()), families(metrics.body));
  // The loop answers: the histogram counts those answers.
  await waitFor(() => sample(p.metrics(), 'celery_pulse_loop_delay_seconds_count') >= 2, 10000);

  const status = await fetchText(address, '/status');
  assert.equal(status.status, 200);
  assert.equal(status.headers['content-type'], 'application/json');
  assert.equal(JSON.parse(status.body).pid, process.pid);

  const head = await kubeletProbe(address, '/metrics', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal((await fetchText(address, '/livez?max-age=0.01')).status, 503);
  assert.equal((await fetchText(address, '/livez?max-age=60')).status, 200);
  assert.equal((await fetchText(address, '/livez?max-age=abc')).status, 400);
  assert.equal((await fetchText(address, '/nothing-here')).status, 404);
  const post = await kubeletProbe(address, '/livez', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  p.stop();
  assert.equal(p.status().listen, address);
  const after = await kubeletProbe(address, '/livez');
  assert.ok(after.error, 'nothing listens after stop()');
});

test('bad input: each answered as documented or closed, nothing echoed, the process alive, beats on time', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const interval = 0.1;
  const p = startPulse({ file, interval, maxStall: 1, listen: '127.0.0.1:0' });
  t.after(() => p.stop());
  const address = p.status().listen;
  const t0 = Date.now();
  const marker = 'ECHO-MARKER-7f3a';
  const cases = [
    ['unknown path', `GET /${marker} HTTP/1.1\r\n\r\n`, /^HTTP\/1\.1 404 /],
    ['other method', `DELETE /livez?${marker} HTTP/1.1\r\n\r\n`, /^HTTP\/1\.1 405 [^]*\r\nAllow: GET, HEAD\r\n/],
    ['malformed request line', `GET ${marker}\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['garbage bytes', Buffer.from([0xff, 0xfe, 0x00, 0x13, 0x37, 0x0a, 0x0d, 0x0a, 0x0d, 0x0a, ...Buffer.from(marker)]), /^HTTP\/1\.1 400 /],
    ['NUL in the target', `GET /livez\0${marker} HTTP/1.1\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['NUL in a header', `GET /livez HTTP/1.1\r\nX-A: a\0${marker}\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['absurd Content-Length', `POST /livez HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n${marker}`, /^HTTP\/1\.1 400 /],
    ['a header line without a colon', `GET /livez HTTP/1.1\r\n${marker}\r\n\r\n`, /^HTTP\/1\.1 400 /],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /^HTTP\/1\.1 400 /],
    ['pipelined requests', `GET /livez HTTP/1.1\r\n\r\nGET /${marker} HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n`, /^HTTP\/1\.1 200 /],
  ];
  for (const [name, bytes, expected] of cases) {
    const reply = await rawExchange(address, bytes);
    assert.ok(reply.closed, `${name}: the connection is closed`);
    assert.match(reply.data, expected, `${name}: ${JSON.stringify(reply.data.slice(0, 200))}`);
    assert.equal(reply.data.includes(marker), false, `${name}: nothing echoed`);
    assert.equal((reply.data.match(/HTTP\/1\.1 /g) || []).length, 1, `${name}: one response, then close`);
  }
  // A 1 MB head: 431, or a close; never the bytes back.
  const huge = await rawExchange(address, `GET /livez HTTP/1.1\r\nX-Big: ${'a'.repeat(1 << 20)}\r\n\r\n`);
  assert.ok(huge.closed);
  assert.ok(huge.data === '' || /^HTTP\/1\.1 431 /.test(huge.data), huge.data.slice(0, 100));
  assert.ok(huge.data.length < 1000);
  // A request that never completes: closed after 2 s, with no answer.
  const slow = await rawExchange(address, 'GET /livez HTTP/1.1\r\nX-Slow: 1\r\n', { timeoutMs: 10000 });
  assert.ok(slow.closed, 'closed by the server');
  assert.equal(slow.data, '');
  assert.ok(slow.ms >= 1900 && slow.ms < 6000, `closed after ${slow.ms} ms`);
  // The process is alive, and beats kept their deadlines meanwhile.
  const s = p.status();
  assert.equal(s.running, true);
  assert.equal(s.withheld, 0);
  assert.equal(s.errors, 0);
  const expectedBeats = (Date.now() - t0) / 1000 / interval;
  assert.ok(s.beats >= expectedBeats - 3, `beats ${s.beats}, deadlines ${expectedBeats}`);
  assert.equal((await kubeletProbe(address, '/livez')).status, 200);
});

test('500 connections that never finish a request, then a fresh /livez: answered within 100 ms (p99 of 20)', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  // The pulse in a process of its own, as a worker's would be.
  const w = await startBlockable(t, file, { interval: 1 });
  t.after(() => w.stop());
  const address = w.address;
  const [host, port] = [address.split(':')[0], Number(address.split(':')[1])];
  // Whether this host is quiet: a fresh /livez is fast before the flood (20
  // probes after 5 to warm up), and the CPUs were mostly idle over a second
  // (other processes keeping the cores busy can leave a few probes fast).
  const load = hostLoad();
  const before = [];
  for (let i = 0; i < 25; i++) before.push((await kubeletProbe(address, '/livez')).ms);
  before.splice(0, 5);
  await new Promise((r) => setTimeout(r, 1000));
  const busyShare = load();
  const quiet = Math.max(...before) < 5 && busyShare < 0.5;
  const idle = [];
  t.after(() => { for (const socket of idle) socket.destroy(); });
  await Promise.all(Array.from({ length: 500 }, () => new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.write('GET /livez HTTP/1.1\r\n'); // never finished
      resolve();
    });
    socket.on('error', resolve); // dropped to admit others: expected
    socket.on('close', resolve);
    idle.push(socket);
  })));
  const times = [];
  for (let i = 0; i < 20; i++) {
    const reply = await kubeletProbe(address, '/livez');
    assert.equal(reply.status, 200, String(reply.error));
    times.push(reply.ms);
  }
  const inOrder = times.map((x) => x.toFixed(0)).join(' ');
  times.sort((a, b) => a - b);
  const p99 = times[times.length - 1];
  t.diagnostic(`each, in order: ${inOrder} ms`);
  t.diagnostic(`fresh /livez after 500 idle connections: p50 ${times[9].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms ` +
    `(before them: at most ${Math.max(...before).toFixed(1)} ms, CPUs ${(busyShare * 100).toFixed(0)} % busy, so the host is ${quiet ? 'quiet' : 'busy'})`);
  // 100 ms: the native strategy always (20 to 28 ms on a quiet 2-core host,
  // 50 ms with two CPU hogs beside the suite), the worker strategy on a quiet
  // host (40 to 43 ms; 137 ms once with two CPU hogs whose load the probes
  // alone did not show, hence the CPU share). Its JavaScript server spends 0.3 to 0.7 ms of its
  // niced thread on each connection it accepts and evicts, so on a busy host
  // the 500 in the backlog delay its first answer (180 and 366 ms seen with
  // two CPU hogs): there the bound is a guard against a server that stops
  // draining its backlog.
  // Under a sanitizer the native server is instrumented too: 101 ms seen
  // with ASan beside two CPU hogs, so there it is held to 100 ms on a quiet
  // host only, like the worker strategy.
  const bound = (STRATEGY === 'native' && !SANITIZED) || quiet ? 100 : 1000;
  assert.ok(p99 < bound, `p99 ${p99} ms (bound ${bound} ms)`);
});

test('a stuck loop: /livez 503 naming the frame, /metrics stalled with the frame and the stall seconds growing; then recovered', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const w = await startBlockable(t, file, { interval: 0.2, maxStall: 0.5 });
  t.after(() => w.stop());
  const idle = await fetchText(w.address, '/metrics');
  if (!NO_PROMTOOL) {
    const lint = promtool(idle.body);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    assert.equal(lint.stdout + lint.stderr, '');
  }
  // A sampler all through the stall and its end: the seconds counter never steps back.
  const counts = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const reply = await fetchText(w.address, '/metrics').catch(() => null);
      if (reply) counts.push(sample(reply.body, 'celery_pulse_stall_seconds_total'));
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  t.after(() => { sampling = false; });
  await w.block(6000);
  let stalled;
  const deadline = Date.now() + 10000;
  for (;;) {
    stalled = await fetchText(w.address, '/metrics');
    if (sample(stalled.body, 'celery_pulse_stalled') === 1) break;
    assert.ok(Date.now() < deadline, 'no stall within 10 s');
  }
  const seconds1 = sample(stalled.body, 'celery_pulse_stall_seconds_total');
  assert.equal(sample(stalled.body, 'celery_pulse_stalls_total'), 1);
  assert.ok(sample(stalled.body, 'celery_pulse_loop_silent_seconds') >= 0.5);
  const livez = await (async () => {
    for (;;) {
      const reply = await kubeletProbe(w.address, '/livez');
      if (reply.status === 503) return reply;
      assert.ok(Date.now() < deadline, `no 503 within 10 s: ${reply.status} ${reply.body}`);
    }
  })();
  assert.match(livez.body, /^stale: .* stalled since .*; beats withheld/);
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));
  t.diagnostic(`stack: ${record.stack ? record.stack[0].function : record.stackUnavailable}`);
  if (Array.isArray(record.stack)) {
    assert.match(livez.body, / in crunch \(.*blockable\.js:\d+:\d+\)/);
    const withFrame = await fetchText(w.address, '/metrics');
    assert.match(withFrame.body, /^celery_pulse_stall_frame_info\{function="crunch",file="[^"]*blockable\.js",line="\d+"\} 1$/m);
  }
  const later = await (async () => {
    for (;;) {
      const reply = await fetchText(w.address, '/metrics');
      if (sample(reply.body, 'celery_pulse_stall_seconds_total') >= seconds1 + 1) return reply;
      assert.ok(Date.now() < deadline + 5000, 'the stall seconds do not grow');
    }
  })();
  if (!NO_PROMTOOL) {
    const lint = promtool(later.body);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    assert.equal(lint.stdout + lint.stderr, '');
  }
  // Recovered.
  await waitFor(() => w.unblockedCount() === 1, 15000);
  let recovered;
  const end = Date.now() + 10000;
  for (;;) {
    recovered = await fetchText(w.address, '/metrics');
    if (sample(recovered.body, 'celery_pulse_stalled') === 0) break;
    assert.ok(Date.now() < end, 'still stalled 10 s after the loop answered');
  }
  assert.ok(sample(recovered.body, 'celery_pulse_stall_seconds_total') >= 5);
  await new Promise((r) => setTimeout(r, 500));
  sampling = false;
  await sampler;
  for (let i = 1; i < counts.length; i++) assert.ok(counts[i] >= counts[i - 1], `the counter stepped back: ${counts[i - 1]} then ${counts[i]}`);
  t.diagnostic(`${counts.length} samples of celery_pulse_stall_seconds_total, never decreasing`);
  assert.doesNotMatch(recovered.body, /^celery_pulse_stall_frame_info\{/m);
  assert.ok(sample(recovered.body, 'celery_pulse_loop_delay_seconds_bucket', 'le="+Inf"') >= 1);
  if (!NO_PROMTOOL) {
    const lint = promtool(recovered.body);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    assert.equal(lint.stdout + lint.stderr, '');
  }
});

test('a kubelet-style client agrees with check on 50 probes at random times: idle, busy in blocks, stuck, recovered', async (t) => {
  const { main } = require('../dist/cli/cli');
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const interval = 0.25;
  const maxAge = 2 * interval; // /livez's default, given to check explicitly
  const w = await startBlockable(t, file, { interval, maxStall: 1 });
  t.after(() => w.stop());
  const checkNow = () => {
    let out = '';
    const status = main(['check', '--file', file, '--max-age', String(maxAge)], { out: (s) => (out += s), err: (s) => (out += s) });
    return { status, out };
  };
  // The worker's day: idle, busy in blocks shorter than maxStall, stuck, recovered.
  let driving = true;
  const driver = (async () => {
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 6; i++) {
      await w.block(400);
      await waitFor(() => w.unblockedCount() === i + 1, 10000);
      await new Promise((r) => setTimeout(r, 100));
    }
    await w.block(4000);
    await waitFor(() => w.unblockedCount() === 7, 15000);
    await new Promise((r) => setTimeout(r, 1500));
    driving = false;
  })();
  const seen = { 200: 0, 503: 0 };
  let probes = 0;
  let nearBoundary = 0;
  let busyOk = 0;
  // At least 50 probes at random times, over the whole day.
  while (probes < 50 || driving) {
    await new Promise((r) => setTimeout(r, Math.random() * (driving ? 300 : 50)));
    const reply = await kubeletProbe(w.address, '/livez');
    const checked = checkNow();
    probes++;
    assert.ok(!reply.error, `probe ${probes}: ${reply.error}`);
    seen[reply.status] = (seen[reply.status] ?? 0) + 1;
    if (w.unblockedCount() < 6 && reply.ok) busyOk++;
    const agree = reply.ok === (checked.status === 0);
    if (!agree) {
      // Only a probe that straddles the moment the file turns stale (or
      // fresh again) may read differently: its age sits at max-age.
      const age = Number(/age (-?[\d.]+) s/.exec(reply.body)?.[1]);
      assert.ok(Math.abs(age - maxAge) <= 0.1, `probe ${probes} disagrees:\n/livez ${reply.status}: ${reply.body}check ${checked.status}: ${checked.out}`);
      nearBoundary++;
      continue;
    }
    // A beat between the two reads can leave an mtime a fraction of a
    // millisecond ahead of the later one's clock: "(mtime in the future)".
    const same = (text) => shape(text).replace(' (mtime in the future)', '');
    assert.equal(same(reply.body), same(checked.out), `probe ${probes}: same wording`);
  }
  await driver;
  t.diagnostic(`${probes} probes: ${seen[200]} x 200, ${seen[503]} x 503, ${nearBoundary} straddling a transition`);
  assert.ok(nearBoundary <= 2);
  assert.ok(seen[503] >= 3, 'the stuck phase was probed');
  assert.ok(seen[200] >= 10);
  assert.ok(busyOk >= 1, 'busy in blocks: 200');
});

test('the busy worker: /livez stays 200 all through blocks shorter than maxStall', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const w = await startBlockable(t, file, { interval: 0.25, maxStall: 1 });
  t.after(() => w.stop());
  let probes = 0;
  for (let i = 0; i < 5; i++) {
    await w.block(700);
    while (w.unblockedCount() < i + 1) {
      const reply = await kubeletProbe(w.address, '/livez');
      assert.equal(reply.status, 200, `${reply.error ?? ''} ${reply.body ?? ''}`);
      probes++;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  t.diagnostic(`${probes} probes during 5 blocks of 700 ms, all 200`);
  assert.ok(probes >= 10);
});

test('promtool: a stuck frame whose function and file names hold a quote, a backslash and a newline', { skip: NO_PROMTOOL }, async (t) => {
  const dir = tmpDir(t);
  const odd = path.join(dir, 'we"ird\\dir\nname');
  const file = path.join(dir, 'health');
  const w = await startBlockable(t, file, { interval: 0.2, maxStall: 0.4 },
    { scriptPath: path.join(odd, 'stuck "job"\\x\n.js'), functionName: 'crunch "a"\\b\nc' });
  t.after(() => w.stop());
  await w.block(4000);
  const deadline = Date.now() + 10000;
  let body;
  for (;;) {
    body = (await fetchText(w.address, '/metrics')).body;
    if (sample(body, 'celery_pulse_stalled') === 1 && (STRATEGY !== 'native' || /^celery_pulse_stall_frame_info\{/m.test(body))) break;
    assert.ok(Date.now() < deadline, `no stall frame within 10 s:\n${body}`);
  }
  if (STRATEGY === 'native') {
    assert.ok(body.includes('celery_pulse_stall_frame_info{function="crunch \\"a\\"\\\\b\\nc",file="'), body);
    assert.ok(body.includes('we\\"ird\\\\dir\\nname/stuck \\"job\\"\\\\x\\n.js",line="'), body);
  }
  const lint = promtool(body);
  assert.equal(lint.status, 0, lint.stdout + lint.stderr);
  assert.equal(lint.stdout + lint.stderr, '');
});

test('README: the Kubernetes httpGet block starts a preloaded worker whose /livez the probe asks', async (t) => {
  const readme = require('./readme');
  const { freePort } = require('./endpoint-helpers');
  const [block] = readme.blocks().filter((b) => b.marker === 'kubernetes-http');
  assert.ok(block, 'the README shows an httpGet probe');
  const { env } = readme.kubernetesParts(block.body);
  const probe = /httpGet: \{ path: (\S+), port: (\d+) \}/.exec(block.body);
  assert.ok(probe && env.CELERY_PULSE_LISTEN === probe[2], 'the probe asks the port the env listens on');
  // The same block on a free port (9464 may be taken on a test host).
  const port = await freePort();
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const app = path.join(dir, 'worker.js');
  fs.writeFileSync(app, 'function crunch(ms) { const end = Date.now() + ms; while (Date.now() < end); }\n' +
    'console.log("up"); process.stdin.on("data", (d) => { crunch(Number(d)); });\n');
  const { spawn } = require('node:child_process');
  const child = spawn(process.execPath, ['--require', path.join(PKG, 'dist', 'register.js'), app], {
    env: { ...process.env, ...env, CELERY_PULSE_LISTEN: String(port), CELERY_PULSE_STRATEGY: STRATEGY,
      CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '0.2', CELERY_PULSE_MAX_STALL: '0.5', CELERY_PULSE_LOG_STALLS: '0' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  const address = `127.0.0.1:${port}`;
  await waitFor(() => fs.existsSync(file), 20000);
  const up = await kubeletProbe(address, probe[1]);
  assert.equal(up.status, 200, String(up.error ?? up.body));
  child.stdin.write('5000\n');
  const end = Date.now() + 10000;
  for (;;) {
    const reply = await kubeletProbe(address, probe[1]);
    if (reply.status === 503) {
      assert.match(reply.body, /stalled since/);
      break;
    }
    assert.ok(Date.now() < end, 'no 503 while stuck');
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('the two strategies answer the same status to every request of the fuzz corpus (the parsers are twins)', { skip: STRATEGY !== 'native' ? 'runs both strategies itself, once (under the native run)' : false }, async (t) => {
  const dir = tmpDir(t);
  const native = pulse.start({ strategy: 'native', file: path.join(dir, 'n'), interval: 5, listen: '127.0.0.1:0' });
  t.after(() => native.stop());
  const worker = pulse.start({ strategy: 'worker', file: path.join(dir, 'w'), interval: 5, listen: '127.0.0.1:0' });
  t.after(() => worker.stop());
  const corpus = path.join(__dirname, 'fuzz', 'corpus', 'request');
  const statusLine = (reply) => reply.data.split('\r\n')[0];
  let compared = 0;
  const seen = {};
  for (const name of fs.readdirSync(corpus).sort()) {
    const bytes = fs.readFileSync(path.join(corpus, name));
    // Sent whole, then half-closed: an incomplete head ends at once.
    const [a, b] = await Promise.all([
      rawExchange(native.status().listen, bytes, { end: true }),
      rawExchange(worker.status().listen, bytes, { end: true }),
    ]);
    assert.equal(statusLine(b), statusLine(a), `${name} ${JSON.stringify(bytes.toString('latin1').slice(0, 120))}`);
    compared++;
    const status = statusLine(a).split(' ')[1] ?? 'closed';
    seen[status] = (seen[status] ?? 0) + 1;
  }
  t.diagnostic(`${compared} corpus requests, the same status from both: ${JSON.stringify(seen)}`);
  assert.ok(compared >= 6);
  assert.ok(seen['400'] && seen['200'] && seen['404'], JSON.stringify(seen));
});

test('out of descriptors: the server rests instead of spinning, and answers again once descriptors are free', { skip: STRATEGY !== 'native' ? 'the native server\'s accept loop (the worker strategy\'s is Node\'s)' : false }, async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  // A low descriptor limit for the child: a few left after Node's own.
  const w = await startBlockable(t, file, { interval: 1 }, { wrap: ['prlimit', '--nofile=36:36', '--'] });
  t.after(() => w.stop());
  const [host, port] = [w.address.split(':')[0], Number(w.address.split(':')[1])];
  const sockets = [];
  t.after(() => { for (const s of sockets) s.destroy(); });
  // More connections than descriptors left: accept() fails with EMFILE.
  for (let i = 0; i < 80; i++) {
    sockets.push(await new Promise((resolve) => {
      const s = net.connect({ host, port }, () => resolve(s));
      s.on('error', () => resolve(s));
    }));
  }
  const cpu = () => {
    const fields = fs.readFileSync(`/proc/${w.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, seconds
  };
  const before = cpu();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 1500));
  const used = (cpu() - before) / ((Date.now() - t0) / 1000);
  t.diagnostic(`CPU while out of descriptors: ${(used * 100).toFixed(0)}%`);
  assert.ok(used < 0.1, `the process used ${(used * 100).toFixed(0)}% CPU: the accept loop spins`);
  for (const s of sockets) s.destroy();
  const deadline = Date.now() + 10000;
  for (;;) {
    const reply = await kubeletProbe(w.address, '/livez');
    if (reply.status === 200) break;
    assert.ok(Date.now() < deadline, `no answer once descriptors are free: ${reply.error}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});
