'use strict';
// Zero-code start: `--require` / `--import celery-pulse-native/register`, also
// through NODE_OPTIONS. Every case runs the preload in a child process, in a
// sandbox app folder where the package is installed under its own name.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, assertExit, readRecord } = require('./helpers');
const { sandbox, cleanEnv, run, cli, startChild } = require('./sandbox');

const WORKER = path.join(PKG, 'examples', 'demo-worker.js');
// The demo worker as an ES module: "block <ms>" stalls the loop, end of stdin ends it.
const WORKER_MJS = `
import { createInterface } from 'node:readline';
const orders = createInterface({ input: process.stdin });
orders.on('line', (line) => {
  const [order, ms] = line.split(' ');
  if (order === 'block') {
    const end = Date.now() + Number(ms);
    while (Date.now() < end);
    process.stdout.write('done\\n');
  }
});
process.stdout.write('ready\\n');
`;

function pulseEnv(file, extra = {}) {
  return cleanEnv({
    CELERY_PULSE_HEALTHCHECK_FILE: file,
    CELERY_PULSE_HEARTBEAT_INTERVAL: '0.2',
    CELERY_PULSE_MAX_STALL: '0.6',
    ...extra,
  });
}

/**
 * A preloaded worker blocks its loop for 3 s (interval 0.2, maxStall 0.6):
 * `check --max-age 1` passes before, fails during (naming the stall), passes after.
 */
async function stallSeenByProbe(t, preload, script) {
  const box = sandbox(t);
  const file = path.join(box.tmp, 'health');
  const env = pulseEnv(file);
  const app = startChild([process.execPath, ...preload, script], { cwd: box.app, env });
  t.after(() => app.kill('SIGKILL'));
  await app.line('ready');
  const check = (...args) => cli(['check', '--max-age', '1', ...args], { env, cwd: box.app });

  const before = await check();
  assertExit(before, 0);
  assert.match(before.stdout, /^fresh: .*health age \d\.\d s <= max-age 1\.0 s: running/);
  assert.equal(readRecord(file).pid, app.pid, 'the preload pulsed another process');

  const done = app.line('done', 20000);
  let blocking = true;
  done.then(() => (blocking = false));
  app.stdin.write('block 3000\n');
  const during = [];
  let json;
  while (blocking) {
    const result = await check();
    during.push(result);
    if (result.status === 1 && json === undefined && blocking) json = await check('--json');
  }
  const stale = during.filter((r) => r.status === 1);
  assert.ok(stale.length > 0, `no probe failed during a 3 s stall: ${during.map((r) => r.stdout).join('')}`);
  for (const r of stale) {
    assert.match(r.stdout, /^stale: .*health age \d\.\d s > max-age 1\.0 s: stalled since \d{4}-\d\d-\d\dT[\d:.]+Z, event loop silent for \d\.\d s/);
  }
  assert.ok(during.every((r) => r.status === 0 || r.status === 1), during.map((r) => r.stderr).join(''));
  assert.ok(json !== undefined, 'no --json probe during the stall');
  assert.equal(json.status, 1);
  const verdict = JSON.parse(json.stdout);
  assert.equal(verdict.ok, false);
  assert.equal(verdict.state, 'stalled');
  assert.equal(verdict.record.state, 'stalled');
  assert.equal(verdict.record.pid, app.pid);
  assert.ok(verdict.ageMs > 1000, `ageMs ${verdict.ageMs}`);

  // Beats resume at the next deadline once the loop answers.
  let after;
  const until = Date.now() + 5000;
  do after = await check();
  while (after.status !== 0 && Date.now() < until);
  assertExit(after, 0);
  assert.match(after.stdout, /^fresh: .*: running: event loop answering again since /);

  app.stdin.end();
  const exit = await app.exited;
  assert.deepEqual(exit, { status: 0, signal: null }, app.errors);
  assert.equal(readRecord(file).state, 'stopped');
}

test('--require: a 3 s stall fails `check --max-age 1` while it lasts, not before or after', (t) =>
  stallSeenByProbe(t, ['--require', 'celery-pulse-native/register'], WORKER));

test('--import: the same with an ES module app', async (t) => {
  const script = path.join(sandbox(t).app, 'worker.mjs');
  fs.writeFileSync(script, WORKER_MJS);
  await stallSeenByProbe(t, ['--import', 'celery-pulse-native/register'], script);
});

test('a misconfigured env stops the process at startup with the coded error; the app never runs', async (t) => {
  const box = sandbox(t);
  fs.writeFileSync(path.join(box.app, 'ran.js'), "console.log('app ran');\n");
  fs.writeFileSync(path.join(box.app, 'ran.mjs'), "console.log('app ran');\n");
  const notADir = path.join(box.tmp, 'plain');
  fs.writeFileSync(notADir, '');
  const cases = [
    [['--require', 'celery-pulse-native/register', 'ran.js'], { CELERY_PULSE_HEARTBEAT_INTERVAL: 'soon' }, /env CELERY_PULSE_HEARTBEAT_INTERVAL must be a number of seconds, got "soon" \(ERR_PULSE_INVALID_ENV\)/],
    [['--import', 'celery-pulse-native/register', 'ran.mjs'], { CELERY_PULSE_MAX_STALL: '-1' }, /env CELERY_PULSE_MAX_STALL .*\(ERR_PULSE_INVALID_ENV\)/],
    [['ran.js'], { NODE_OPTIONS: '--require celery-pulse-native/register', CELERY_PULSE_STRATEGY: 'thread' }, /env CELERY_PULSE_STRATEGY .*\(ERR_PULSE_INVALID_ENV\)/],
    [['ran.mjs'], { NODE_OPTIONS: '--import celery-pulse-native/register', CELERY_PULSE_HEALTHCHECK_FILE: '' }, /env CELERY_PULSE_HEALTHCHECK_FILE .*\(ERR_PULSE_INVALID_ENV\)/],
    [['ran.js'], { NODE_OPTIONS: '--require celery-pulse-native/register', CELERY_PULSE_HEALTHCHECK_FILE: path.join(notADir, 'health') }, /cannot use healthcheck file .*\(ERR_PULSE_FILE\)/],
  ];
  for (const [args, vars, expected] of cases) {
    const result = await run([process.execPath, ...args], { cwd: box.app, env: cleanEnv(vars) });
    const what = `${JSON.stringify(vars)} ${args.join(' ')}`;
    assert.equal(result.signal, null, what);
    assert.equal(result.status, 1, `${what}: exit ${result.status}\n${result.stderr}`);
    assert.match(result.stderr, expected, what);
    assert.match(result.stderr, /not starting the app without its heartbeat/, what);
    assert.doesNotMatch(result.stdout, /app ran/, `${what}: the app ran without a heartbeat`);
  }
});

test('the preloaded pulse never keeps the process alive, and leaves a stopped record', async (t) => {
  const box = sandbox(t);
  fs.writeFileSync(path.join(box.app, 'short.js'), "setTimeout(() => console.log(`done ${process.pid}`), 50);\n");
  const file = path.join(box.tmp, 'health');
  for (const preload of ['--require', '--import']) {
    const result = await run([process.execPath, preload, 'celery-pulse-native/register', 'short.js'], {
      cwd: box.app,
      env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '3600' }),
    });
    assertExit(result, 0);
    assert.ok(result.ms < 5000, `${preload}: the process took ${result.ms} ms to end`);
    const record = readRecord(file);
    assert.equal(record.state, 'stopped');
    assert.equal(`done ${record.pid}\n`, result.stdout);
  }
});

test('under NODE_OPTIONS, the probe itself never beats the file it judges', async (t) => {
  const box = sandbox(t);
  const file = path.join(box.tmp, 'health');
  fs.writeFileSync(file, '{"state":"running","message":"started","pid":1}\n');
  const old = Date.now() / 1000 - 300;
  fs.utimesSync(file, old, old);
  const env = cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, NODE_OPTIONS: '--require celery-pulse-native/register' });
  for (const argv of [
    [path.join(box.app, 'node_modules', '.bin', 'celery-pulse-native'), 'check'],
    ['npx', 'celery-pulse-native', 'check'],
  ]) {
    const result = await run(argv, { cwd: box.app, env });
    assertExit(result, 1);
    assert.match(result.stdout, /^stale: .*age 30\d\.\d s|^stale: .*age 30\d s/);
    assert.equal(Math.round(fs.statSync(file).mtimeMs / 1000), Math.round(old), `${argv.join(' ')} touched the file`);
    assert.equal(readRecord(file).pid, 1, `${argv.join(' ')} rewrote the record`);
  }
});

test('one pulse per file: not in worker threads, not in forked children, not twice', async (t) => {
  const box = sandbox(t);
  const file = path.join(box.tmp, 'health');
  const other = path.join(box.tmp, 'other');
  fs.writeFileSync(
    path.join(box.app, 'family.js'),
    `const { fork } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const registered = () => require('celery-pulse-native/register').pulse !== undefined;
if (process.argv[2] === 'child') {
  process.send({ pid: process.pid, pulsed: registered() });
} else {
  const report = { pid: process.pid, pulsed: registered(), children: [] };
  // A worker with an env of its own (no trace of the parent's pulse) still does not pulse.
  const worker = new Worker("require('node:worker_threads').parentPort.postMessage(require('celery-pulse-native/register').pulse !== undefined)", {
    eval: true,
    env: { CELERY_PULSE_HEALTHCHECK_FILE: process.env.CELERY_PULSE_HEALTHCHECK_FILE },
  });
  worker.once('exit', (code) => report.worker === undefined && console.log(JSON.stringify({ workerExit: code })));
  worker.once('message', (pulsed) => {
    report.worker = pulsed;
    const same = fork(__filename, ['child']);
    same.once('message', (m) => {
      report.children.push(m);
      const own = fork(__filename, ['child'], { env: { ...process.env, CELERY_PULSE_HEALTHCHECK_FILE: ${JSON.stringify(other)} } });
      own.once('message', (m) => {
        report.children.push(m);
        console.log(JSON.stringify(report));
      });
    });
  });
}
`,
  );
  const result = await run(
    [process.execPath, '--require', 'celery-pulse-native/register', '--import', 'celery-pulse-native/register', 'family.js'],
    { cwd: box.app, env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '60' }) },
  );
  assertExit(result, 0); // preloaded twice: one pulse, no "already pulsed" error
  const report = JSON.parse(result.stdout);
  assert.equal(report.pulsed, true);
  assert.equal(report.worker, false, 'a worker thread started a pulse of its own');
  assert.equal(report.children[0].pulsed, false, 'a forked child pulsed its parent\'s file');
  assert.equal(report.children[1].pulsed, true, 'a child with its own file got no pulse');
  assert.equal(readRecord(file).pid, report.pid);
  assert.equal(readRecord(other).pid, report.children[1].pid);
});

test('`npm start` under NODE_OPTIONS pulses the app, not npm', async (t) => {
  const box = sandbox(t);
  fs.writeFileSync(
    path.join(box.app, 'package.json'),
    JSON.stringify({ name: 'app', private: true, scripts: { start: 'node short.js' } }),
  );
  fs.writeFileSync(path.join(box.app, 'short.js'), "setTimeout(() => console.log(`app pid ${process.pid}`), 50);\n");
  const file = path.join(box.tmp, 'health');
  const result = await run(['npm', 'start', '--silent'], {
    cwd: box.app,
    env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, NODE_OPTIONS: '--require celery-pulse-native/register' }),
    timeout: 60000,
  });
  assertExit(result, 0);
  const pid = Number(/app pid (\d+)/.exec(result.stdout)[1]);
  assert.equal(readRecord(file).pid, pid);
});
