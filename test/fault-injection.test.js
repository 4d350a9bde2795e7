'use strict';
// Faults injected into a running pulse: what is at the path changes under it,
// permissions are revoked, the file system turns read-only, the process is
// frozen, and many pulses race start/stop across worker threads. In every
// case the thread survives, never follows a link, never touches or replaces
// something it did not create, reports the fault, and recovers when it clears.
// (A removed parent directory is covered in file.test.js.)
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  PKG, STRATEGY, startPulse, tmpDir, blockFor, sleep, waitFor, readRecord, runChild, runChildAsync, assertExit,
  publicPackageCopy,
} = require('./helpers');
const { tool, controlledChild, mountTmpfs, fillDisk, stopWhole } = require('./control');

const OLD = new Date('2020-01-01T00:00:00Z');
const INTERVAL = 0.05;

/** Atomically puts `make(tmp)`'s creation at `file` (a FIFO or a symlink: rename replaces the file). */
function plantByRename(file, make) {
  const tmp = `${file}.plant`;
  make(tmp);
  fs.renameSync(tmp, file);
}

/** Puts a directory at `file`, retrying if the heartbeat re-creates the file in between. */
function plantDirectory(file) {
  const tmp = `${file}.plant`;
  fs.mkdirSync(tmp);
  fs.writeFileSync(path.join(tmp, 'data'), 'not yours\n');
  fs.utimesSync(tmp, OLD, OLD);
  for (let i = 0; i < 1000; i++) {
    fs.rmSync(file, { force: true });
    try {
      fs.renameSync(tmp, file);
      return;
    } catch (error) {
      if (error.code !== 'ENOTDIR' && error.code !== 'EEXIST') throw error;
    }
  }
  throw new Error('could not plant a directory');
}

/** Waits for a fault with `code`, then checks no beat lands while it lasts. */
async function assertFaultHolds(pulse, code, file) {
  const error = await waitFor(() => pulse.status().lastError?.code === code && pulse.status().lastError, 3000, 5);
  assert.ok(error.message.includes(file), error.message);
  const { beats, errors } = pulse.status();
  await sleep(INTERVAL * 1000 * 6);
  const now = pulse.status();
  assert.equal(now.beats, beats, `no beat counted while ${code} lasts`);
  assert.ok(now.errors >= errors + 3, `retried at each deadline (${errors} -> ${now.errors})`);
  assert.equal(now.running, true);
  assert.equal(now.lastError.code, code);
  return error;
}

/** The fault clears once the path is free again: the file is re-created, beats resume. */
async function assertRecovers(pulse, file) {
  const beats = pulse.status().beats;
  await waitFor(() => pulse.status().lastError === null && pulse.status().beats > beats, 3000, 5);
  const st = fs.lstatSync(file);
  assert.ok(st.isFile(), 'a regular file is back at the path');
  assert.equal(st.mode & 0o777, 0o644 & ~process.umask());
  const record = readRecord(file);
  assert.equal(record.pid, process.pid);
  assert.equal(record.state, 'running');
}

test('a directory planted at the path mid-run: EISDIR, left as found, never beaten; clears when removed', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: INTERVAL, maxStall: 5 });
  t.after(() => pulse.stop());
  plantDirectory(file);
  const error = await assertFaultHolds(pulse, 'EISDIR', file);
  assert.match(error.message, /is a directory/);
  assert.ok(fs.lstatSync(file).isDirectory());
  assert.equal(fs.lstatSync(file).mtimeMs, OLD.getTime(), "the directory's times were not set");
  assert.equal(fs.readFileSync(path.join(file, 'data'), 'utf8'), 'not yours\n');

  fs.rmSync(file, { recursive: true });
  await assertRecovers(pulse, file);
});

test('a FIFO planted at the path mid-run: ENOTREG, never opened, times untouched; clears when removed', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: INTERVAL, maxStall: 5 });
  t.after(() => pulse.stop());
  plantByRename(file, (tmp) => {
    tool('mkfifo', [tmp]);
    fs.utimesSync(tmp, OLD, OLD);
  });
  const error = await assertFaultHolds(pulse, 'ENOTREG', file);
  assert.match(error.message, /not a regular file/);
  const st = fs.lstatSync(file);
  assert.ok(st.isFIFO(), 'still the FIFO');
  assert.equal(st.mtimeMs, OLD.getTime(), "the FIFO's times were not set");

  fs.unlinkSync(file);
  await assertRecovers(pulse, file);
});

test('a symlink planted mid-run is never followed, never beaten, never replaced, even by the stall record', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const target = path.join(dir, 'precious');
  fs.writeFileSync(target, 'precious\n');
  fs.utimesSync(target, OLD, OLD);
  const pulse = startPulse({ file, interval: INTERVAL, maxStall: 0.3 });
  t.after(() => pulse.stop());
  plantByRename(file, (tmp) => {
    fs.symlinkSync(target, tmp);
    fs.lutimesSync(tmp, OLD, OLD);
  });
  const error = await assertFaultHolds(pulse, 'ELOOP', file);
  assert.match(error.message, /symbolic link/);

  // A stall while the link is there: the stall record must not replace it.
  blockFor(1000);
  await waitFor(() => pulse.status().withheld > 0, 3000, 5);
  const link = fs.lstatSync(file);
  assert.ok(link.isSymbolicLink(), 'the link is still there');
  assert.equal(link.mtimeMs, OLD.getTime(), "the link's own times were not set");
  assert.equal(fs.readlinkSync(file), target);
  assert.equal(fs.readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(fs.statSync(target).mtimeMs, OLD.getTime(), 'the target was not touched');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['health', 'precious'], 'no temporary file left behind');

  fs.unlinkSync(file);
  await assertRecovers(pulse, file);
  assert.equal(fs.readFileSync(target, 'utf8'), 'precious\n');
});

test('a dangling symlink planted mid-run: its target is never created, not even by stop()', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const target = path.join(dir, 'elsewhere', 'created-through-the-link');
  fs.mkdirSync(path.dirname(target));
  for (const removeOnStop of [false, true]) {
    const pulse = startPulse({ file, interval: INTERVAL, maxStall: 5, removeOnStop });
    plantByRename(file, (tmp) => fs.symlinkSync(target, tmp));
    await assertFaultHolds(pulse, 'ELOOP', file);
    pulse.stop();
    assert.equal(fs.existsSync(target), false, 'the target was not created');
    assert.ok(fs.lstatSync(file).isSymbolicLink(), `stop() (removeOnStop ${removeOnStop}) left the link as found`);
    fs.unlinkSync(file);
  }
});

test('stop() leaves a planted FIFO in place instead of renaming its record over it', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: INTERVAL, maxStall: 5 });
  plantByRename(file, (tmp) => tool('mkfifo', [tmp]));
  await assertFaultHolds(pulse, 'ENOTREG', file);
  pulse.stop();
  assert.ok(fs.lstatSync(file).isFIFO());
});

test('permissions revoked mid-run (unprivileged user): EPERM/EACCES reported, cleared when restored', async (t) => {
  const pkg = publicPackageCopy(t);
  const dir = path.join(tmpDir(t), 'run');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chownSync(dir, 65534, 65534);
  const file = path.join(dir, 'health');
  const c = controlledChild(pkg, { file, interval: INTERVAL, maxStall: 5, strategy: STRATEGY }, { uid: 65534, gid: 65534, cwd: '/' });
  t.after(() => c.child.kill('SIGKILL'));
  await c.ready;
  assert.equal(fs.statSync(file).uid, 65534);

  const until = (predicate) => c.until(predicate);

  // The file is taken over by another owner: setting its times is refused.
  fs.chownSync(file, 0, 0);
  const taken = await until((s) => s.lastError?.code === 'EPERM');
  const mtime = fs.statSync(file).mtimeMs;
  await sleep(300);
  const still = await c.ask('status');
  assert.equal(still.beats, taken.beats, 'no beat while EPERM');
  assert.equal(fs.statSync(file).mtimeMs, mtime);
  fs.chownSync(file, 65534, 65534);
  const back = await until((s) => s.lastError === null && s.beats > taken.beats);
  assert.ok(Date.now() - fs.statSync(file).mtimeMs < 1000, 'the file is fresh again');

  // The directory turns read-only for the user and the file goes: re-creation is refused.
  fs.chmodSync(dir, 0o555);
  fs.chownSync(dir, 0, 0);
  fs.unlinkSync(file);
  const denied = await until((s) => s.lastError?.code === 'EACCES');
  assert.ok(denied.beats >= back.beats);
  assert.equal(fs.existsSync(file), false);
  fs.chownSync(dir, 65534, 65534);
  fs.chmodSync(dir, 0o755);
  const restored = await until((s) => s.lastError === null && s.beats > denied.beats);
  assert.equal(fs.statSync(file).uid, 65534, 're-created by the child as its own file');
  assert.equal(readRecord(file).pid, c.child.pid);

  const last = await c.finish();
  assert.ok(last.errors > 0);
  assert.ok(last.beats > restored.beats - 1);
});

test('a read-only file system mid-run: EROFS reported, beats resume after remount rw', async (t) => {
  const dir = mountTmpfs(t, 'size=1m');
  if (dir === null) return;
  const file = path.join(dir, 'health');
  const pulse = startPulse({ file, interval: INTERVAL, maxStall: 5 });
  t.after(() => pulse.stop());
  tool('mount', ['-o', 'remount,ro', dir]);
  const error = await assertFaultHolds(pulse, 'EROFS', file);
  assert.match(error.message, /read-only file system/);
  tool('mount', ['-o', 'remount,rw', dir]);
  const beats = pulse.status().beats;
  await waitFor(() => pulse.status().lastError === null && pulse.status().beats > beats, 3000, 5);
  assert.ok(Date.now() - fs.statSync(file).mtimeMs < 1000);
  pulse.stop();
});

test('a full file system mid-run: ENOSPC reported while the file cannot be re-created, then recovery', async (t) => {
  const dir = mountTmpfs(t, 'size=64k');
  if (dir === null) return;
  const file = path.join(dir, 'health');
  const c = controlledChild(PKG, { file, interval: INTERVAL, maxStall: 30, strategy: STRATEGY });
  t.after(() => c.child.kill('SIGKILL'));
  await c.ready;
  // Frozen, so its thread cannot re-create the file before the disk is full.
  await stopWhole(c.child);
  fs.unlinkSync(file);
  const filler = path.join(dir, 'filler');
  fillDisk(filler);
  c.child.kill('SIGCONT');
  const full = await c.until((s) => s.lastError?.code === 'ENOSPC');
  assert.match(full.lastError.message, /full file system/);
  assert.equal(fs.existsSync(file), false);
  assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0, 'the failed temporary file was removed');
  fs.unlinkSync(filler);
  const back = await c.until((s) => s.lastError === null && s.beats > full.beats);
  assert.match(readRecord(file).message, /re-created/);
  assert.ok(back.running);
  await c.finish();
});

test('shared sticky /tmp: a file another user made first is refused (EPERM), never written', async (t) => {
  const pkg = publicPackageCopy(t);
  const shared = path.join(tmpDir(t), 'tmp');
  fs.mkdirSync(shared);
  fs.chmodSync(shared, 0o1777);
  const file = path.join(shared, 'celery_healthcheck');
  fs.writeFileSync(file, 'belongs to root\n', { mode: 0o644 });
  fs.utimesSync(file, OLD, OLD);
  const result = runChild(
    `try { pulse.start({ file: ${JSON.stringify(file)}, strategy: STRATEGY }); console.log('started'); }
     catch (e) { console.log(JSON.stringify({ code: e.code, syscallCode: e.syscallCode })); }`,
    { uid: 65534, gid: 65534, cwd: '/', pkg },
  );
  assertExit(result, 0);
  assert.deepEqual(JSON.parse(result.stdout), { code: 'ERR_PULSE_FILE', syscallCode: 'EPERM' });
  assert.equal(fs.readFileSync(file, 'utf8'), 'belongs to root\n');
  assert.equal(fs.statSync(file).mtimeMs, OLD.getTime());
  assert.deepEqual(fs.readdirSync(shared), ['celery_healthcheck'], 'no temporary file left behind');
});

test('links planted at the predictable temporary names are never written through', (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const target = path.join(dir, 'precious');
  fs.writeFileSync(target, 'precious\n');
  fs.utimesSync(target, OLD, OLD);
  const dangling = path.join(dir, 'created-through-a-link');
  // The name is .<base>.<pid>.<n>.tmp with n counting this process's pulses.
  for (let n = 0; n < 1000; n++) {
    fs.symlinkSync(n % 2 ? target : dangling, path.join(dir, `.health.${process.pid}.${n}.tmp`));
  }
  const pulse = startPulse({ file, interval: 60 });
  pulse.stop();
  assert.equal(readRecord(file).state, 'stopped', 'the records were written beside the links');
  assert.equal(fs.readFileSync(target, 'utf8'), 'precious\n');
  assert.equal(fs.statSync(target).mtimeMs, OLD.getTime());
  assert.equal(fs.existsSync(dangling), false);
  assert.ok(fs.lstatSync(file).isFile());
});

test('SIGSTOP freezes the beats (the file goes stale); SIGCONT resumes them without replaying missed deadlines', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const interval = 0.1;
  const c = controlledChild(PKG, { file, interval, maxStall: 10, strategy: STRATEGY });
  t.after(() => c.child.kill('SIGKILL'));
  await c.ready;
  await sleep(300);
  const before = await c.ask('status');
  await stopWhole(c.child);
  const frozenAt = Date.now();
  const mtime = fs.statSync(file).mtimeMs;
  await sleep(1500);
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'no beat while the process is stopped');
  assert.ok(Date.now() - mtime >= 1400, 'the file went stale');

  c.child.kill('SIGCONT');
  const resumedAt = Date.now();
  await waitFor(() => fs.statSync(file).mtimeMs > mtime, 3000, 5);
  await sleep(300);
  const after = await c.ask('status');
  const ranMs = Date.now() - resumedAt + (frozenAt - Date.parse(before.lastBeatAt));
  // About ranMs / 100 deadlines passed while the process ran; a replay of the
  // ~15 missed while frozen would show as a burst far above that.
  const gained = after.beats - before.beats;
  assert.ok(gained >= 1, 'beats resumed');
  assert.ok(gained <= ranMs / 100 + 4, `${gained} beats in ~${ranMs} ms of running: missed deadlines were replayed`);
  assert.equal(after.withheld, 0, 'a frozen process is not a stalled loop when maxStall exceeds the freeze');
  assert.equal(after.lastError, null);
  await c.finish();
});

test('many pulses race start/stop from several worker threads, one terminated mid-race', async (t) => {
  const dir = tmpDir(t);
  const result = await runChildAsync(`
    const { Worker } = require('node:worker_threads');
    const fs = require('node:fs');
    const path = require('node:path');
    const dir = ${JSON.stringify(dir)};
    const files = Array.from({ length: 6 }, (_, i) => path.join(dir, 'shared-' + i));
    const baseline = fs.readdirSync('/proc/self/task').length;
    const body = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const pulse = require(workerData.pkg);
      const counts = { started: 0, inUse: 0 };
      (async () => {
        for (let i = 0; i < workerData.rounds; i++) {
          const file = workerData.files[(i * 7 + workerData.seed) % workerData.files.length];
          let p;
          try {
            p = pulse.start({ file, interval: 0.01 + (i % 5) * 0.003, maxStall: 5, strategy: workerData.strategy });
            counts.started++;
          } catch (e) {
            if (e.code !== 'ERR_PULSE_FILE_IN_USE') throw e;
            counts.inUse++;
            continue;
          }
          if (i % 3 === 0) await new Promise((r) => setTimeout(r, i % 4));
          else if (i % 3 === 1) await null;
          p.stop();
        }
        parentPort.postMessage(counts);
      })();\`;
    const run = (seed, rounds) => new Worker(body, { eval: true, workerData: { pkg: ${JSON.stringify(PKG)}, files, seed, rounds, strategy: STRATEGY } });
    const workers = [1, 2, 3, 4].map((seed) => run(seed, 400));
    const victim = run(5, 1e9); // never finishes: terminated while racing
    const done = workers.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); }));
    const exited = [...workers, victim].map((w) => new Promise((resolve) => w.once('exit', resolve)));
    setTimeout(() => victim.terminate(), 150);
    // The main thread races too.
    let mainStarted = 0;
    const mainRace = (async () => {
      for (let i = 0; i < 200; i++) {
        try { const p = pulse.start({ file: files[i % files.length], interval: 0.01, maxStall: 5, strategy: STRATEGY }); mainStarted++; await null; p.stop(); }
        catch (e) { if (e.code !== 'ERR_PULSE_FILE_IN_USE') throw e; }
        await new Promise((r) => setImmediate(r));
      }
    })();
    Promise.all([...done, mainRace]).then(async (counts) => {
      await Promise.all(exited);
      // Threads go as their pulses stop (the worker strategy's asynchronously).
      const until = Date.now() + 10000;
      while (fs.readdirSync('/proc/self/task').length > baseline && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const tasks = fs.readdirSync('/proc/self/task');
      const names = tasks.map((t) => fs.readFileSync('/proc/self/task/' + t + '/comm', 'utf8').trim());
      // Every claim was released, the terminated worker's included: by the
      // addon's cleanup hook at once; the worker strategy frees a claim whose
      // heartbeat thread died mid-start once that thread has been silent for
      // 10 s (src/worker/claims.ts), so it gets that long.
      const patienceMs = STRATEGY === 'worker' ? 15000 : 0;
      for (const f of files) {
        const until = Date.now() + patienceMs;
        for (;;) {
          try { pulse.start({ file: f, interval: 60, strategy: STRATEGY }).stop(); break; }
          catch (e) {
            if (e.code !== 'ERR_PULSE_FILE_IN_USE' || Date.now() > until) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }
      const states = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')).state);
      console.log(JSON.stringify({ counts: counts.slice(0, 4), mainStarted, states, threads: tasks.length, baseline, names }));
    }, (e) => { console.error(e); process.exit(2); });`, { timeout: 120000 });
  assertExit(result, 0);
  const out = JSON.parse(result.stdout);
  const started = out.counts.reduce((n, c) => n + c.started, 0) + out.mainStarted;
  const inUse = out.counts.reduce((n, c) => n + c.inUse, 0);
  assert.ok(started > 200, `${started} pulses started`);
  assert.equal(out.counts.reduce((n, c) => n + c.started + c.inUse, 0), 1600, 'every round started or was refused as in use');
  assert.ok(inUse > 0, 'the race on shared files actually happened');
  assert.deepEqual([...new Set(out.states)], ['stopped']);
  assert.ok(out.threads <= out.baseline + 2, `threads ${out.threads} vs baseline ${out.baseline}: ${out.names.join(', ')}`);
  const leftovers = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));
  if (STRATEGY === 'native') {
    assert.deepEqual(leftovers, [], 'no temporary record file left behind');
  } else {
    // worker.terminate() can stop the heartbeat thread's JavaScript between
    // creating a temporary record and renaming it (Node runs nothing after):
    // at most that one worker's file may stay (README, Strategies).
    assert.ok(leftovers.length <= 1, `temporary files left: ${leftovers}`);
  }
});

test('the record holds what SECURITY.md says, and nothing from the environment', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const secret = `s3cret-${process.pid}-${Date.now()}`;
  const pulse = require(PKG);
  const saved = process.env.PULSE_TEST_SECRET;
  process.env.PULSE_TEST_SECRET = secret;
  try {
    const p = pulse.start({ file, interval: 0.05, maxStall: 0.1, strategy: STRATEGY });
    blockFor(400); // a stall record too
    const stalledText = fs.readFileSync(file, 'utf8');
    p.stop();
    for (const text of [stalledText, fs.readFileSync(file, 'utf8')]) {
      assert.ok(!text.includes(secret), 'no env value in the record');
      const record = JSON.parse(text);
      const allowed = ['state', 'message', 'updatedAt', 'lastBeatAt', 'stalledSince', 'loopSilentMs', 'pid', 'threadId',
        'hostname', 'startedAt', 'file', 'interval', 'maxStall', 'strategy',
        'stack', 'stackAt', 'stackUnavailable', 'thread', 'active', 'lastStall',
        'nativeStack', 'nativeStackUnavailable', 'waitingFor'];
      for (const key of Object.keys(record)) assert.ok(allowed.includes(key), `unexpected record field ${key}`);
      assert.equal(record.hostname, os.hostname());
    }
  } finally {
    if (saved === undefined) delete process.env.PULSE_TEST_SECRET;
    else process.env.PULSE_TEST_SECRET = saved;
  }
});
