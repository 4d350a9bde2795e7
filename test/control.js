'use strict';
// Test helpers for a pulse in a child process driven over stdin, and for the
// system tools the fault tests use (mount, mkfifo).
const assert = require('node:assert/strict');
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

/** Runs a system tool without the sanitizer runtime that test:sanitize preloads into node. */
function tool(command, args) {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return execFileSync(command, args, { env, stdio: 'pipe', encoding: 'utf8' });
}

/**
 * A child process running one pulse, driven over stdin: each line is a JSON
 * command, each answer a JSON line with the pulse's status(). Commands:
 * {op: 'status'}, {op: 'stop'} (then a natural exit), {op: 'block', ms}
 * (keeps the event loop busy for ms, answering after it). The child writes
 * {"blocking":true} just before a block starts, so a test can act during it.
 */
function controlledChild(pkg, options, spawnOptions = {}) {
  const source = `
    const pulse = require(${JSON.stringify(pkg)}).start(${JSON.stringify(options)});
    const lines = require('node:readline').createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      const { op, ms } = JSON.parse(line);
      if (op === 'stop') pulse.stop();
      if (op === 'block') {
        process.stdout.write('{"blocking":true}\\n');
        const end = performance.now() + ms;
        while (performance.now() < end);
      }
      process.stdout.write(JSON.stringify(pulse.status()) + '\\n');
      if (op === 'stop') { lines.close(); process.stdin.destroy(); } // then a natural exit
    });
    process.stdout.write(JSON.stringify(pulse.status()) + '\\n');`;
  const child = spawn(process.execPath, ['-e', source], { stdio: ['pipe', 'pipe', 'pipe'], ...spawnOptions });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const lines = readline.createInterface({ input: child.stdout });
  const pending = [];
  const waiting = [];
  lines.on('line', (line) => (waiting.length ? waiting.shift()(line) : pending.push(line)));
  const next = () => new Promise((resolve, reject) => {
    if (pending.length) return resolve(pending.shift());
    const timer = setTimeout(() => reject(new Error(`no answer from the child; stderr: ${stderr}`)), 20000);
    waiting.push((line) => { clearTimeout(timer); resolve(line); });
  });
  const exited = new Promise((resolve) => child.on('close', (status, signal) => resolve({ status, signal, stderr })));
  return {
    child,
    exited,
    ready: next().then(JSON.parse),
    /** What the child wrote to stderr so far. */
    stderr: () => stderr,
    async ask(op, extra = {}) {
      child.stdin.write(JSON.stringify({ op, ...extra }) + '\n');
      return JSON.parse(await next());
    },
    /** Starts a block of `ms`; resolves once it runs, with the answer after it as `done`. */
    async block(ms) {
      child.stdin.write(JSON.stringify({ op: 'block', ms }) + '\n');
      assert.deepEqual(JSON.parse(await next()), { blocking: true });
      return { done: next().then(JSON.parse) };
    },
    /** Polls status() until `predicate` holds (deadline `ms`), returning it. */
    async until(predicate, ms = 5000) {
      const end = Date.now() + ms;
      for (;;) {
        const status = await this.ask('status');
        if (predicate(status)) return status;
        if (Date.now() > end) throw new Error(`child status never matched: ${JSON.stringify(status)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    /** Stops the pulse, checks the child exits 0, returns its last status. */
    async finish() {
      const status = await this.ask('stop');
      const end = await exited;
      assert.equal(end.signal, null, end.stderr);
      assert.equal(end.status, 0, end.stderr);
      return status;
    },
  };
}

/** Mounts a small tmpfs on a fresh directory, or skips the test saying why. */
function mountTmpfs(t, options) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-tmpfs-'));
  // One hook, so the unmount comes before the removal.
  t.after(() => {
    try { tool('umount', [dir]); } catch { /* not mounted */ }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  try {
    tool('mount', ['-t', 'tmpfs', '-o', `${options},mode=0755`, 'pulse-test', dir]);
  } catch (error) {
    t.skip(`cannot mount a tmpfs here (${String(error.stderr || error.message).trim()})`);
    return null;
  }
  return dir;
}

/** Writes to `file` until the file system is full (ENOSPC). */
function fillDisk(file) {
  const fd = fs.openSync(file, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
  } catch (error) {
    assert.equal(error.code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Sends SIGSTOP and waits until every thread of the process is stopped. kill()
 * returns before a thread running on another core has stopped: a test that
 * acts at once (unlinks the file, reads its mtime) races the last beat. Seen
 * under qemu in the matrix: the thread re-created a just-deleted file before
 * it stopped, so a full disk was never met.
 */
async function stopWhole(child, ms = 10000) {
  child.kill('SIGSTOP');
  const tasks = `/proc/${child.pid}/task`;
  const stopped = () => fs.readdirSync(tasks).every((tid) => {
    try {
      const stat = fs.readFileSync(`${tasks}/${tid}/stat`, 'utf8');
      return /^[Tt]/.test(stat.slice(stat.lastIndexOf(')') + 2));
    } catch {
      return true; // the thread has ended
    }
  });
  const end = Date.now() + ms;
  while (!stopped()) {
    if (Date.now() > end) throw new Error(`pid ${child.pid} not stopped ${ms} ms after SIGSTOP`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

module.exports = { tool, controlledChild, mountTmpfs, fillDisk, stopWhole };
