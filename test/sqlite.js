'use strict';
// better-sqlite3 for the tests of a stall inside native code: installed once
// into a cache folder outside the repository (it compiles SQLite from source,
// about 90 s), so the package's own install stays fast and needs no compiler.
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

// One folder per Node ABI and CPU: the addon is built for the Node that installs it.
const DIR = path.join(process.env.PULSE_TEST_SQLITE_DIR || '/var/cache/celery-pulse-test/better-sqlite3', `abi${process.versions.modules}-${process.arch}`);
const VERSION = '12';
// Held while one process installs. Suites run at once on one machine (npm
// test and npm run test:sanitize in two terminals, two matrix rows of one ABI)
// share DIR, and two npm installs into one folder break each other's build.
const LOCK = `${DIR}.lock`;
let cached = null;

/** Blocks this thread for ms: sqliteModule is synchronous, as its callers are. */
function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** Runs fn holding LOCK (a folder with the holder's pid); takes over a lock whose holder is gone. */
function withInstallLock(fn) {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  const deadline = Date.now() + 20 * 60 * 1000;
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let holder = 0;
    let age = 0;
    try {
      age = Date.now() - fs.statSync(LOCK).mtimeMs;
      holder = Number(fs.readFileSync(path.join(LOCK, 'pid'), 'utf8'));
    } catch {
      // released meanwhile, or its holder has not written its pid yet
    }
    // A dead holder, or one that died before writing its pid (a minute is far longer than that takes).
    if ((holder > 0 && !alive(holder)) || (!holder && age > 60000)) {
      fs.rmSync(LOCK, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`waited 20 minutes for ${LOCK} (held by pid ${holder})`);
    sleepSync(250);
  }
  try {
    fs.writeFileSync(path.join(LOCK, 'pid'), String(process.pid));
    return fn();
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}

/** This environment without a preloaded sanitizer runtime: npm and the load check need none. */
function plainEnv() {
  const env = { ...process.env };
  for (const key of ['LD_PRELOAD', 'ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS', 'TSAN_OPTIONS']) delete env[key];
  return env;
}

/** The path of better-sqlite3's main module, or { why } when it cannot be installed (never under CI). */
function sqliteModule() {
  if (cached) return cached;
  if (process.env.PULSE_MATRIX_LAUNCHER) {
    // Compiling SQLite under qemu-user takes most of an hour.
    cached = { why: 'better-sqlite3 is not compiled under emulation (the native rows run it)' };
    return cached;
  }
  const main = path.join(DIR, 'node_modules', 'better-sqlite3');
  const loads = () => spawnSync(process.execPath, ['-e', `new (require(${JSON.stringify(main)}))(':memory:').close()`], { encoding: 'utf8', timeout: 30000, env: plainEnv() }).status === 0;
  if (!loads()) {
    // node-gyp builds against the headers in npm_config_nodedir: those of
    // another Node (a matrix row's) would give a binary this one cannot load.
    const nodedir = process.env.npm_config_nodedir || '/usr';
    let headers = '';
    try {
      headers = /#define NODE_MAJOR_VERSION (\d+)/.exec(fs.readFileSync(path.join(nodedir, 'include', 'node', 'node_version.h'), 'utf8'))?.[1] ?? '';
    } catch {
      // no headers there: node-gyp would download them, which it may not here
    }
    if (headers !== process.versions.node.split('.')[0]) {
      cached = { why: `no Node ${process.versions.node.split('.')[0]} headers in ${nodedir} to build better-sqlite3 against (found ${headers || 'none'})` };
      return cached;
    }
    const failure = withInstallLock(() => {
      if (loads()) return null; // another process installed it while this one waited
      fs.mkdirSync(DIR, { recursive: true });
      if (!fs.existsSync(path.join(DIR, 'package.json'))) fs.writeFileSync(path.join(DIR, 'package.json'), '{"name":"pulse-test-sqlite","private":true}\n');
      const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', `better-sqlite3@${VERSION}`], {
        cwd: DIR,
        encoding: 'utf8',
        timeout: 15 * 60 * 1000,
        env: { ...plainEnv(), npm_config_nodedir: process.env.npm_config_nodedir || '/usr' },
      });
      return npm.status === 0 && loads() ? null : (npm.stderr || npm.error?.message || '').trim().split('\n').slice(-3).join(' ');
    });
    if (failure !== null) {
      const why = `better-sqlite3@${VERSION} could not be installed in ${DIR}: ${failure}`;
      if (process.env.CI === 'true') throw new Error(why);
      cached = { why };
      return cached;
    }
  }
  cached = main;
  return cached;
}

module.exports = { sqliteModule, withInstallLock };
