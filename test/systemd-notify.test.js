'use strict';
// systemd's notify protocol, against a datagram socket this test binds (a
// path and an abstract name): WATCHDOG=1 from the heartbeat thread only while
// the loop answers, at least every WATCHDOG_USEC / 2 even with a longer
// interval; STATUS= on each change of state, the stall's with its frame;
// READY=1 from pulse.ready(); nothing from a worker thread's pulse, with
// CELERY_PULSE_SYSTEMD=0, or watchdog pings for another WATCHDOG_PID. A
// NOTIFY_SOCKET that leads nowhere never stops the pulse: status() says why.
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { test } = require('node:test');
const { pulse, runChildAsync, tmpDir, waitFor, STRATEGY } = require('./helpers');

const PYTHON = spawnSync('python3', ['-c', 'import socket'], { encoding: 'utf8' }).status === 0 ? 'python3' : null;
// The protocol is native: its cases run once, in the native pass.
const skip = STRATEGY !== 'native' ? 'the "worker" strategy cannot send to systemd (its case is below)'
  : PYTHON ? false : 'needs python3 (to bind the datagram socket systemd would bind)';

// Binds NOTIFY_SOCKET's address and prints each datagram as a JSON line with
// its CLOCK_MONOTONIC arrival time in ms.
const RECEIVER = `
import json, socket, sys, time
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + name[1:] if name.startswith('@') else name)
print('ready', flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({'t': time.monotonic() * 1000, 'm': data.decode()}), flush=True)
`;

/** A receiver on `address`; stops with the test, even on failure. */
async function receiver(t, address) {
  const child = spawn(PYTHON, ['-c', RECEIVER, address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages = [];
  let ready = false;
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') ready = true;
    else messages.push(JSON.parse(line));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60000); // the hard bound
  t.after(() => {
    clearTimeout(timer);
    child.kill('SIGKILL');
  });
  await waitFor(() => ready, 10000);
  return messages;
}

const lines = (messages) => messages.flatMap((m) => m.m.split('\n').map((line) => ({ t: m.t, line })));
const pings = (messages) => lines(messages).filter((l) => l.line === 'WATCHDOG=1');
const statuses = (messages) => lines(messages).filter((l) => l.line.startsWith('STATUS=')).map((l) => l.line);

for (const kind of ['path', 'abstract']) {
  test(`native: over ${kind === 'path' ? 'a path' : 'an abstract'} socket, watchdog pings only while the loop answers, STATUS= on each change, READY=1`, { skip }, async (t) => {
    const dir = tmpDir(t);
    const address = kind === 'path' ? path.join(dir, 'notify') : `@celery-pulse-test-${process.pid}-${Date.now()}`;
    const messages = await receiver(t, address);
    const file = path.join(dir, 'health');
    // interval 5 s, longer than WATCHDOG_USEC / 2 (0.75 s): the pings keep their own schedule.
    const result = await runChildAsync(
      `const p = pulse.start({ file: ${JSON.stringify(file)}, interval: 5, maxStall: 1, strategy: 'native' });
       p.ready();
       const mark = (what) => console.log(what, performance.timeOrigin + performance.now(), process.hrtime.bigint() / 1000000n);
       setTimeout(() => {
         mark('stuck');
         (function stuckForAWhile() { const end = Date.now() + 3000; while (Date.now() < end); })();
         mark('free');
         setTimeout(() => { console.log(JSON.stringify(p.status().systemd)); p.stop(); }, 6000);
       }, 2000);`,
      { env: { NOTIFY_SOCKET: address, WATCHDOG_USEC: '1500000', WATCHDOG_PID: '' }, timeout: 30000 },
    );
    assert.equal(result.status, 0, result.stderr);
    await waitFor(() => statuses(messages).some((s) => s.startsWith('STATUS=stopped')), 5000);
    const mono = (what) => Number(new RegExp(`${what} \\S+ (\\d+)`).exec(result.stdout)[1]);
    const stuck = mono('stuck');
    const free = mono('free');
    const status = JSON.parse(result.stdout.trim().split('\n').at(-1));
    assert.equal(status.enabled, true);
    assert.equal(status.socket, address);
    assert.equal(status.watchdogUsec, 1500000);
    assert.equal(status.lastError, null);
    assert.ok(lines(messages).some((l) => l.line === 'READY=1'), 'READY=1 sent');

    const all = pings(messages).map((p) => p.t);
    // While the loop answered (before the stall, and 1 s after it), no gap
    // between pings exceeds WATCHDOG_USEC / 2 (with 300 ms for a loaded machine).
    const answering = all.filter((at) => at < stuck || at > free + 1000);
    for (let i = 1; i < answering.length; i++) {
      if (answering[i - 1] < stuck && answering[i] > free) continue;
      assert.ok(answering[i] - answering[i - 1] <= 1050, `a gap of ${answering[i] - answering[i - 1]} ms between pings`);
    }
    assert.ok(answering.filter((at) => at < stuck).length >= 3, 'pings before the stall');
    assert.ok(answering.filter((at) => at > free).length >= 4, 'pings after the stall');
    // Fed again as soon as the loop answers, not at the next deadline (5 s away).
    const firstAfter = all.find((at) => at > free);
    assert.ok(firstAfter !== undefined && firstAfter - free <= 1050, `first ping ${firstAfter - free} ms after the loop answered again`);
    // Stuck: no ping once maxStall (1 s) has passed, until the loop answers.
    const during = all.filter((at) => at > stuck + 1100 && at < free);
    assert.deepEqual(during, [], 'no ping while stuck past maxStall');

    const said = statuses(messages);
    assert.match(said[0], /^STATUS=running: beating /);
    const stalled = said.find((s) => s.startsWith('STATUS=stalled'));
    // The frame is the busy loop's, or, on a host too loaded for the
    // heartbeat thread to get its answer in time, the first one the stack
    // request met as the loop came back (mark('free')).
    assert.match(stalled, /^STATUS=stalled since \S+, loop silent for \d+\.\d s; at (stuckForAWhile|mark) \(/);
    assert.ok(said.some((s) => /^STATUS=running: event loop answering again since /.test(s)), said.join('\n'));
    assert.match(said.at(-1), /^STATUS=stopped: /);
    assert.equal(said.length, 4, `one line per change of state:\n${said.join('\n')}`);
  });
}

test('native: a worker thread\'s pulse, CELERY_PULSE_SYSTEMD=0 and systemd: false send nothing; another WATCHDOG_PID gets no pings', { skip }, async (t) => {
  const dir = tmpDir(t);
  const address = path.join(dir, 'notify');
  const messages = await receiver(t, address);
  const source = (extra) => `
    const { Worker } = require('node:worker_threads');
    const w = new Worker(\`const pulse = require(${JSON.stringify(path.join(__dirname, '..'))});
      const p = pulse.start({ file: ${JSON.stringify(path.join(dir, 'w'))}, interval: 0.1, strategy: 'native' });
      p.ready();
      setTimeout(() => { require('node:worker_threads').parentPort.postMessage(p.status().systemd); p.stop(); }, 800);\`, { eval: true });
    w.on('message', (m) => console.log(JSON.stringify(m)));
    w.on('exit', () => {
      const p = pulse.start({ file: ${JSON.stringify(path.join(dir, 'm'))}, interval: 0.1, strategy: 'native'${extra} });
      p.ready();
      setTimeout(() => { console.log(JSON.stringify(p.status().systemd)); p.stop(); }, 800);
    });`;
  const env = { NOTIFY_SOCKET: address, WATCHDOG_USEC: '300000' };
  for (const [extra, vars] of [[', systemd: false', {}], ['', { CELERY_PULSE_SYSTEMD: '0' }]]) {
    const result = await runChildAsync(source(extra), { env: { ...env, ...vars }, timeout: 20000 });
    assert.equal(result.status, 0, result.stderr);
    const [inWorker, inMain] = result.stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.equal(inWorker.enabled, false);
    assert.equal(inMain.enabled, false);
  }
  const other = await runChildAsync(source(''), { env: { ...env, WATCHDOG_PID: '1' }, timeout: 20000 });
  assert.equal(other.status, 0, other.stderr);
  const [inWorker, inMain] = other.stdout.trim().split('\n').map((line) => JSON.parse(line));
  assert.equal(inWorker.enabled, false, 'a worker thread never talks to systemd');
  assert.equal(inMain.enabled, true);
  assert.equal(inMain.watchdogUsec, null, 'WATCHDOG_PID names another process');
  await waitFor(() => statuses(messages).some((s) => s.startsWith('STATUS=stopped')), 5000);
  // Only the last child's main-thread pulse spoke: its status lines and READY=1, no ping.
  assert.deepEqual(pings(messages), []);
  assert.deepEqual(lines(messages).map((l) => l.line.replace(/:.*/, '')), ['STATUS=running', 'READY=1', 'STATUS=stopped']);
});

test(`${STRATEGY}: a NOTIFY_SOCKET that leads nowhere, is too long or is not a socket: the pulse beats, status() says why`, (t) => {
  const dir = tmpDir(t);
  const regular = path.join(dir, 'regular');
  fs.writeFileSync(regular, '');
  const cases = [
    [path.join(dir, 'nowhere'), 'ENOENT'],
    [`/${'x'.repeat(200)}`, 'ENAMETOOLONG'],
    [`@${'x'.repeat(200)}`, 'ENAMETOOLONG'],
    [regular, 'ECONNREFUSED'],
    ['relative/socket', 'EINVAL'],
  ];
  for (const [address, code] of cases) {
    const saved = process.env.NOTIFY_SOCKET;
    process.env.NOTIFY_SOCKET = address;
    let p;
    let second;
    try {
      p = pulse.start({ file: path.join(dir, `health-${code}`), interval: 0.05, strategy: STRATEGY });
      second = pulse.start({ file: path.join(dir, `second-${code}`), interval: 0.05, strategy: STRATEGY });
    } finally {
      if (saved === undefined) delete process.env.NOTIFY_SOCKET;
      else process.env.NOTIFY_SOCKET = saved;
    }
    try {
      p.ready();
      const status = p.status();
      assert.equal(status.running, true);
      assert.equal(second.status().systemd.enabled, false, 'only the first pulse of the main thread talks to systemd');
      if (STRATEGY === 'native') {
        assert.equal(status.systemd.enabled, true);
        assert.equal(status.systemd.lastError.code, code, `${address}: ${JSON.stringify(status.systemd)}`);
        assert.match(status.systemd.lastError.message, /cannot send to NOTIFY_SOCKET/);
      } else {
        assert.equal(status.systemd.enabled, false);
        assert.equal(status.systemd.lastError.code, 'ENOTSUP');
        assert.match(status.systemd.lastError.message, /"worker" strategy cannot send to NOTIFY_SOCKET/);
      }
    } finally {
      p.stop();
      second.stop();
    }
  }
});

test(`${STRATEGY}: without NOTIFY_SOCKET, status().systemd is off and quiet`, (t) => {
  const saved = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  t.after(() => saved !== undefined && (process.env.NOTIFY_SOCKET = saved));
  const p = pulse.start({ file: path.join(tmpDir(t), 'health'), interval: 0.05, strategy: STRATEGY });
  try {
    p.ready();
    assert.deepEqual(p.status().systemd, { enabled: false, socket: null, watchdogUsec: null, sent: 0, lastError: null });
  } finally {
    p.stop();
  }
});
