'use strict';
// The healthcheck file: what start() accepts and refuses, and how faults
// after start are survived and reported.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, startPulse, STRATEGY, tmpDir, waitFor, readRecord, runChild, runChildAsync, assertExit, publicPackageCopy } = require('./helpers');

function assertFileError(fn, file, code) {
  assert.throws(fn, (error) => {
    assert.equal(error.code, 'ERR_PULSE_FILE', error.message);
    assert.equal(error.syscallCode, code);
    assert.equal(error.path, file);
    assert.ok(error.message.includes(file), `message names the path: ${error.message}`);
    assert.ok(error.message.includes(code), `message names ${code}: ${error.message}`);
    return true;
  });
}

test('a symlink at the path is refused; its target is neither touched nor created', (t) => {
  const dir = tmpDir(t);
  const target = path.join(dir, 'target');
  fs.writeFileSync(target, 'precious\n');
  const old = new Date('2020-01-01T00:00:00Z');
  fs.utimesSync(target, old, old);
  const link = path.join(dir, 'health');
  fs.symlinkSync(target, link);
  assertFileError(() => startPulse({ file: link, interval: 0.05 }), link, 'ELOOP');
  assert.equal(fs.readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(fs.statSync(target).mtimeMs, old.getTime());
  assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the link itself is left alone');
});

test('a dangling symlink is refused and its target is not created', (t) => {
  const dir = tmpDir(t);
  const target = path.join(dir, 'elsewhere', 'created-by-attacker');
  fs.mkdirSync(path.dirname(target));
  const link = path.join(dir, 'health');
  fs.symlinkSync(target, link);
  assertFileError(() => startPulse({ file: link }), link, 'ELOOP');
  assert.equal(fs.existsSync(target), false);
});

test('a directory at the path is refused', (t) => {
  const file = path.join(tmpDir(t), 'health');
  fs.mkdirSync(file);
  assertFileError(() => startPulse({ file }), file, 'EISDIR');
});

test('a FIFO at the path is refused', (t) => {
  const file = path.join(tmpDir(t), 'health');
  execFileSync('mkfifo', [file]);
  assertFileError(() => startPulse({ file }), file, 'ENOTREG');
});

test('an unwritable directory is refused (as an unprivileged user)', (t) => {
  const pkg = publicPackageCopy(t);
  const dir = tmpDir(t); // 0755, owned by root
  const cases = [
    [path.join(dir, 'health'), 'EACCES'],
    [path.join(dir, 'missing', 'health'), 'EACCES'], // the parent cannot be created
  ];
  for (const [file, code] of cases) {
    const result = runChild(
      `try { pulse.start({ file: ${JSON.stringify(file)}, strategy: STRATEGY }); console.log('started'); }
       catch (e) { console.log(JSON.stringify({ code: e.code, syscallCode: e.syscallCode, message: e.message })); }`,
      { uid: 65534, gid: 65534, cwd: '/', pkg },
    );
    assertExit(result, 0);
    const out = JSON.parse(result.stdout);
    assert.equal(out.code, 'ERR_PULSE_FILE');
    assert.equal(out.syscallCode, code);
    assert.ok(out.message.includes(file));
    assert.equal(fs.existsSync(file), false);
  }
});

test('missing parents are created 0755; the file is 0644 minus umask', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'a', 'b', 'health');
  const result = runChild(
    `process.umask(0o022);
     const a = pulse.start({ file: ${JSON.stringify(file)}, strategy: STRATEGY, interval: 60 }); a.stop();
     process.umask(0o077);
     const b = pulse.start({ file: ${JSON.stringify(file + '-private')}, strategy: STRATEGY, interval: 60 }); b.stop();`,
  );
  assertExit(result, 0);
  assert.equal(fs.statSync(path.join(dir, 'a')).mode & 0o777, 0o755);
  assert.equal(fs.statSync(path.join(dir, 'a', 'b')).mode & 0o777, 0o755);
  assert.equal(fs.statSync(file).mode & 0o777, 0o644);
  assert.equal(fs.statSync(file + '-private').mode & 0o777, 0o600);
});

test('start replaces a previous record with a fresh one and beats synchronously', (t) => {
  const file = path.join(tmpDir(t), 'health');
  fs.writeFileSync(file, '{"state":"running","pid":1,"startedAt":"2001-01-01T00:00:00.000Z"}\n');
  const old = new Date('2001-01-01T00:00:00Z');
  fs.utimesSync(file, old, old);
  const before = Date.now();
  const pulse = startPulse({ file, interval: 3600 });
  t.after(() => pulse.stop());
  assert.ok(fs.statSync(file).mtimeMs >= before - 5, 'first beat happened inside start()');
  const record = readRecord(file);
  assert.equal(record.pid, process.pid);
  assert.equal(record.state, 'running');
  assert.equal(record.interval, 3600);
  assert.equal(record.strategy, STRATEGY);
  assert.ok(Date.parse(record.startedAt) >= before - 5);
  assert.equal(pulse.status().beats, 1);
});

test('one pulse per file per process; different files are independent', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const a = startPulse({ file, interval: 60 });
  t.after(() => a.stop());
  const contentBefore = fs.readFileSync(file, 'utf8');
  for (const spelling of [file, path.join(dir, '.', 'sub', '..', 'health')]) {
    if (spelling.includes('sub')) fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
    assert.throws(() => startPulse({ file: spelling, interval: 60 }), { code: 'ERR_PULSE_FILE_IN_USE' });
  }
  assert.equal(fs.readFileSync(file, 'utf8'), contentBefore, 'the refused pulse left the file alone');
  const b = startPulse({ file: path.join(dir, 'other'), interval: 60 });
  b.stop();
  assert.equal(a.status().running, true);
  a.stop();
  const c = startPulse({ file, interval: 60 }); // free again after stop
  c.stop();
});

test('a file pulsed in one thread is in use for every other thread of the process', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const file = path.join(${JSON.stringify(dir)}, 'health');
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const pulse = require(workerData.pkg);
      let held;
      const attempt = () => {
        try { held = pulse.start({ file: workerData.file, interval: 60, strategy: workerData.strategy }); return 'started'; }
        catch (e) { return e.code; }
      };
      parentPort.on('message', (m) => {
        if (m === 'try') parentPort.postMessage(attempt());
        if (m === 'stop') { held.stop(); parentPort.postMessage('stopped'); parentPort.close(); }
      });\`, { eval: true, workerData: { pkg: ${JSON.stringify(PKG)}, file, strategy: STRATEGY } });
    const ask = (m) => new Promise((resolve) => { w.once('message', resolve); w.postMessage(m); });
    const tryHere = () => { try { return pulse.start({ file, interval: 60, strategy: STRATEGY }); } catch (e) { return e.code; } };
    (async () => {
      const out = {};
      const mine = tryHere();
      out.workerWhileMainHolds = await ask('try');
      mine.stop();
      out.workerAfterMainStopped = await ask('try');
      out.mainWhileWorkerHolds = tryHere();
      await ask('stop');
      const again = tryHere();
      out.mainAfterWorkerStopped = typeof again === 'string' ? again : 'started';
      if (typeof again !== 'string') again.stop();
      console.log(JSON.stringify(out));
    })();`, { timeout: 30000 });
  assertExit(result, 0);
  assert.deepEqual(JSON.parse(result.stdout), {
    workerWhileMainHolds: 'ERR_PULSE_FILE_IN_USE',
    workerAfterMainStopped: 'started',
    mainWhileWorkerHolds: 'ERR_PULSE_FILE_IN_USE',
    mainAfterWorkerStopped: 'started',
  });
});

test('a worker thread terminated while pulsing leaves its file free for a new pulse', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const path = require('node:path');
    const file = path.join(${JSON.stringify(dir)}, 'health');
    const w = new Worker(\`
      const { parentPort, workerData } = require('node:worker_threads');
      const p = require(workerData.pkg).start({ file: workerData.file, interval: 0.05, maxStall: 5, strategy: workerData.strategy });
      const poll = setInterval(() => { if (p.status().beats >= 3) { clearInterval(poll); parentPort.postMessage('beating'); } }, 10);
      setInterval(() => {}, 1000);\`, { eval: true, workerData: { pkg: ${JSON.stringify(PKG)}, file, strategy: STRATEGY } });
    w.once('message', async () => {
      await w.terminate();
      const t0 = Date.now();
      let out;
      try {
        const p = pulse.start({ file, interval: 60, strategy: STRATEGY });
        out = { started: true, ms: Date.now() - t0, pid: JSON.parse(require('node:fs').readFileSync(file, 'utf8')).pid };
        p.stop();
      } catch (e) { out = { code: e.code }; }
      console.log(JSON.stringify(out));
    });`, { timeout: 30000 });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  assert.equal(out.started, true, `start after terminate: ${result.stdout}`);
  assert.ok(out.ms < 1000, `start took ${out.ms} ms`);
});

test('a deleted file is re-created at the next beat', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.05, maxStall: 5 });
  t.after(() => pulse.stop());
  fs.unlinkSync(file);
  await waitFor(() => fs.existsSync(file), 2000, 5);
  const record = readRecord(file);
  assert.equal(record.pid, process.pid);
  assert.match(record.message, /re-created/);
  assert.equal(fs.statSync(file).mode & 0o777, 0o644 & ~process.umask());
  assert.equal(pulse.status().lastError, null);
});

test('a fault after start shows in lastError and clears when the fault clears', async (t) => {
  const dir = path.join(tmpDir(t), 'run');
  const file = path.join(dir, 'health');
  const pulse = startPulse({ file, interval: 0.05, maxStall: 5 });
  t.after(() => pulse.stop());
  fs.rmSync(dir, { recursive: true }); // the thread never re-creates directories
  const error = await waitFor(() => pulse.status().lastError, 2000, 5);
  assert.equal(error.code, 'ENOENT');
  assert.ok(error.message.includes(file));
  assert.ok(error.at instanceof Date && Math.abs(error.at - Date.now()) < 2000);
  const failedAt = pulse.status().beats;
  await waitFor(() => pulse.status().errors >= 3, 2000, 5); // retried at each deadline
  assert.equal(pulse.status().beats, failedAt, 'no beat counted while failing');
  assert.equal(pulse.status().running, true);
  assert.equal(fs.existsSync(dir), false, 'the directory was not re-created');

  fs.mkdirSync(dir);
  await waitFor(() => pulse.status().lastError === null, 2000, 5);
  await waitFor(() => fs.existsSync(file), 2000, 5);
  assert.ok(pulse.status().beats > failedAt);
});
