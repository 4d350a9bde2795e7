'use strict';
// Helpers for the real-worker tests: run an example as a child process, read
// its output line by line, and probe its healthcheck file the way an
// orchestrator does.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { PKG, STRATEGY, sleep } = require('./helpers');

const EXAMPLES = path.join(PKG, 'examples');

/**
 * Starts `examples/<script>` with `env` added. Returns { child, output(),
 * waitForLine(re), stop() }; the child is killed when the test ends.
 */
function runExample(t, script, env = {}, args = []) {
  return runScript(t, path.join(EXAMPLES, script), env, args);
}

/** runExample for any script file. */
function runScript(t, file, env = {}, args = []) {
  const script = path.basename(file);
  const child = spawn(process.execPath, [file, ...args], {
    cwd: PKG,
    // The example runs the strategy under test, as a deployment would set it.
    env: { ...process.env, CELERY_PULSE_STRATEGY: STRATEGY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set();
  const wake = () => { for (const w of waiters) w(); };
  child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; wake(); });
  child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { wake(); resolve({ code, signal }); }));
  let exit = null;
  exited.then((e) => { exit = e; });
  t.after(() => { if (exit === null) child.kill('SIGKILL'); });

  return {
    child,
    output: () => ({ stdout, stderr }),
    exited,
    /** Resolves with the first stdout line matching `re` (from `from` chars on). */
    waitForLine(re, timeoutMs = 20000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = stdout.slice(from).split('\n').find((l) => re.test(l));
          if (line !== undefined) return done(() => resolve(line));
          if (exit !== null) return done(() => reject(new Error(`${script} exited (${JSON.stringify(exit)}) before printing ${re}\nstdout: ${stdout}\nstderr: ${stderr}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${script} printed no ${re} within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))), timeoutMs);
        const done = (fn) => { clearTimeout(timer); waiters.delete(check); fn(); };
        waiters.add(check);
        check();
      });
    },
    /** SIGTERM, then the exit status. */
    async stop(signal = 'SIGTERM') {
      if (exit === null) child.kill(signal);
      return exited;
    },
  };
}

const BIN = path.join(PKG, 'bin', 'celery-pulse-native.js');

/**
 * The orchestrator's question, asked the way a probe asks it:
 * `celery-pulse-native check ARGS... --max-age maxAge`. Returns
 * { status, stdout } (0 fresh, 1 stale/gone/missing).
 */
function check(args, maxAge) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('CELERY_PULSE_')) delete env[key];
  const result = spawnSync(process.execPath, [BIN, 'check', ...args, '--max-age', String(maxAge)], { encoding: 'utf8', env, timeout: 10000 });
  if (result.status !== 0 && result.status !== 1) {
    throw new Error(`check ${args.join(' ')} exited ${result.status}: ${result.stdout}${result.stderr}`);
  }
  return { status: result.status, stdout: result.stdout };
}

/** check for one file: 0 when fresh, 1 when not. */
function probe(file, maxAge) {
  return check(['--file', file], maxAge).status;
}

/** Polls `check` on one file until it exits `expected`; resolves with the time it took. */
async function waitForProbe(file, maxAge, expected, timeoutMs = 15000) {
  const t0 = Date.now();
  while (probe(file, maxAge) !== expected) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`probe of ${file} did not become ${expected} within ${timeoutMs} ms`);
    await sleep(50);
  }
  return Date.now() - t0;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** Debian's Python with celery, not whatever python3 comes first on PATH. */
const SYSTEM_PYTHON = '/usr/bin/python3';

/** GET http://127.0.0.1:<port><urlPath>: the body, as text. */
function httpGet(port, urlPath) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

module.exports = { EXAMPLES, runExample, runScript, check, probe, waitForProbe, readJson, httpGet, SYSTEM_PYTHON };
// Looked up only by the tests that need Python Celery: a python3 started by
// every test file that loads these helpers would also run under the
// sanitizers' preloaded runtime, which reports its leaks.
let celerySkip;
Object.defineProperty(module.exports, 'CELERY_SKIP', {
  enumerable: true,
  get() {
    if (celerySkip === undefined) {
      celerySkip = fs.existsSync(SYSTEM_PYTHON) &&
        spawnSync(SYSTEM_PYTHON, ['-c', 'import celery, redis'], { encoding: 'utf8' }).status === 0
        ? false
        : 'Python Celery is not installed (apt-get install python3-celery python3-redis; .ci/run installs them)';
    }
    return celerySkip;
  },
});
