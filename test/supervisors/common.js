'use strict';
// What the supervisor tests share: the documentation's tagged blocks, a cache
// outside the checkout, an app folder with worker.js and this package, and
// runs with hard timeouts.
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readme = require('../readme');

const PKG = path.join(__dirname, '..', '..');
// Downloads and built root file systems kept between runs (never in the checkout).
const CACHE = process.env.PULSE_TEST_CACHE || (process.getuid?.() === 0 ? '/var/cache/celery-pulse-test' : path.join(os.tmpdir(), 'celery-pulse-test-cache'));
const STALL_LOG = 'celery-pulse-native: event loop stalled';
const EXIT_STATUS = 70;

/** The one block of docs/ marked `test: <marker>`. */
function block(marker) {
  const found = readme.blocks().filter((b) => b.marker === marker);
  assert.equal(found.length, 1, `one block marked "test: ${marker}" in README.md or docs/`);
  return found[0];
}

/** Runs a command to its end under a hard timeout: {status, stdout, stderr}; rejects on failure unless allowFail. */
function run(file, args, { timeout = 60000, allowFail = false, env = process.env, cwd } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env, cwd }, (error, stdout, stderr) => {
      const status = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      if (status !== 0 && !allowFail) {
        reject(new Error(`${file} ${args.join(' ')}: ${error.killed ? `timed out after ${timeout} ms` : `exited ${status}`}\n${stdout}${stderr}`));
      } else resolve({ status, stdout, stderr });
    });
  });
}

/**
 * An app folder: worker.js and node_modules/celery-pulse-native, a copy of
 * this checkout's package (dist/, its local build when there is one, else the
 * prebuilds, and node-gyp-build), so it also works where the checkout is not
 * mounted (a container).
 */
function appDir(dir) {
  const pkg = path.join(dir, 'node_modules', 'celery-pulse-native');
  fs.mkdirSync(pkg, { recursive: true });
  for (const entry of ['package.json', 'dist', 'bin', 'prebuilds', 'binding.gyp']) {
    fs.cpSync(path.join(PKG, entry), path.join(pkg, entry), { recursive: true });
  }
  const built = path.join(PKG, 'build', 'Release', 'celery_pulse.node');
  if (fs.existsSync(built)) {
    fs.mkdirSync(path.join(pkg, 'build', 'Release'), { recursive: true });
    fs.copyFileSync(built, path.join(pkg, 'build', 'Release', 'celery_pulse.node'));
  }
  fs.cpSync(path.join(PKG, 'node_modules', 'node-gyp-build'), path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true });
  fs.copyFileSync(path.join(__dirname, 'worker.js'), path.join(dir, 'worker.js'));
  // Readable by any user a supervisor may run it as.
  const open = (p) => {
    const st = fs.statSync(p);
    fs.chmodSync(p, st.isDirectory() ? 0o755 : st.mode & 0o111 ? 0o755 : 0o644);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) open(path.join(p, e));
  };
  open(dir);
  return dir;
}

/** The supervised-worker lines of a log: [{what, pid, at}]. */
function workerLines(text) {
  return [...text.matchAll(/supervised-worker: (.+?) \(pid (\d+)\) at (\d+)/g)].map((m) => ({ what: m[1], pid: Number(m[2]), at: Number(m[3]) }));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` (async) until it returns a truthy value or `ms` pass; returns the value or throws `what`. */
async function until(what, ms, fn, stepMs = 250) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

module.exports = { PKG, CACHE, STALL_LOG, EXIT_STATUS, block, run, appDir, workerLines, sleep, until };
