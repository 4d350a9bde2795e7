'use strict';
// Shared test helpers. Tests run against the strategy named by
// PULSE_TEST_STRATEGY (default: native), so one suite covers both.
const assert = require('node:assert/strict');
const { spawnSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PKG = path.join(__dirname, '..');
const STRATEGY = process.env.PULSE_TEST_STRATEGY || 'native';
// Running under ASan or TSan (npm run test:sanitize preloads their runtime).
const SANITIZED = /lib[at]san/.test(process.env.LD_PRELOAD || '');
const pulse = require(PKG);

/** start() with the strategy under test. */
function startPulse(options = {}) {
  return pulse.start({ strategy: STRATEGY, ...options });
}

/** A fresh directory removed when the test ends. */
function tmpDir(t, prefix = 'pulse-test-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  const remove = () => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  // A test's own `after(() => pulse.stop())` may run after this hook, so a
  // heartbeat can still write here while it runs: then remove at exit.
  t.after(() => {
    try {
      remove();
    } catch {
      process.once('exit', () => { try { remove(); } catch { /* left in the tmp dir */ } });
    }
  });
  return dir;
}

/** Keeps the event loop busy (no timers, no I/O callbacks) for `ms`. */
function blockFor(ms, onSpin) {
  const end = performance.now() + ms;
  while (performance.now() < end) if (onSpin) onSpin();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(predicate, timeoutMs = 5000, stepMs = 10) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms: ${predicate}`);
    await sleep(stepMs);
  }
}

function threadCount() {
  return fs.readdirSync('/proc/self/task').length;
}

function mtimeMs(file) {
  return fs.statSync(file).mtimeMs;
}

/** Source of a child script that loads this package as `pulse`. */
function childPrelude(pkg = PKG) {
  return `const pulse = require(${JSON.stringify(pkg)});\n` +
    `const STRATEGY = ${JSON.stringify(STRATEGY)};\n`;
}

/** Runs `source` (CommonJS) in a fresh node process. */
function runChild(source, { env = {}, timeout = 30000, uid, gid, args = [], cwd, pkg } = {}) {
  const result = spawnSync(process.execPath, [...args, '-e', childPrelude(pkg) + source], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout,
    uid,
    gid,
    cwd,
  });
  if (result.error) throw result.error;
  return result;
}

/** Like runChild, but asynchronous: resolves with {status, signal, stdout, stderr}. */
function runChildAsync(source, { env = {}, timeout = 30000, args = [] } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args, '-e', childPrelude() + source], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Asserts a child ended with `code` and no signal, showing its output if not. */
function assertExit(result, code) {
  assert.equal(result.signal, null, `child killed by ${result.signal}\n${result.stderr}`);
  assert.equal(result.status, code, `child exit ${result.status}, expected ${code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
}

/** Runs fn with env vars set (undefined deletes), restoring them afterwards. */
function withEnv(vars, fn) {
  const saved = {};
  for (const [key, value] of Object.entries(vars)) {
    saved[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    return fn();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

function readRecord(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

module.exports = {
  PKG,
  STRATEGY,
  SANITIZED,
  pulse,
  startPulse,
  tmpDir,
  blockFor,
  sleep,
  waitFor,
  threadCount,
  mtimeMs,
  runChild,
  runChildAsync,
  assertExit,
  readRecord,
  withEnv,
};

/**
 * A world-readable copy of the package (dist, prebuilds, loader) for children
 * run as an unprivileged user: the checkout itself may sit in a private folder.
 */
function publicPackageCopy(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pkg-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const entry of ['package.json', 'dist', 'prebuilds', 'node_modules/node-gyp-build']) {
    fs.cpSync(path.join(PKG, entry), path.join(root, entry), { recursive: true });
  }
  const open = (p) => {
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
    if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) open(path.join(p, e));
  };
  open(root);
  return root;
}
module.exports.publicPackageCopy = publicPackageCopy;
