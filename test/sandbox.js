'use strict';
// An application folder for the operating tests (CLI, preload, README): this
// package installed as node_modules/celery-pulse-native with its bin link, and
// stand-in apps. Container paths (/app, /tmp) in README commands map into it.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PKG, STRATEGY } = require('./helpers');

const BIN = path.join(PKG, 'bin', 'celery-pulse-native.js');

// A worker that idles until killed; it has no pulse code of its own.
const IDLE_APP = "setInterval(() => {}, 1000);\n";

/** Env for children: the caller's, without any pulse settings or preload of its own. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('CELERY_PULSE_') || key === 'NODE_OPTIONS') delete env[key];
  }
  // Tests run the strategy under test; no npm chatter or registry calls from npx.
  env.CELERY_PULSE_STRATEGY = STRATEGY;
  env.npm_config_update_notifier = 'false';
  env.npm_config_fund = 'false';
  env.npm_config_audit = 'false';
  // `#!/usr/bin/env node` and `node` in README commands find this node first.
  env.PATH = [path.dirname(process.execPath), env.PATH].filter(Boolean).join(path.delimiter);
  return { ...env, ...extra };
}

function sandbox(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-ops-'));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const app = path.join(root, 'app');
  const tmp = path.join(root, 'tmp');
  fs.mkdirSync(path.join(app, 'node_modules', '.bin'), { recursive: true });
  fs.mkdirSync(tmp);
  fs.symlinkSync(PKG, path.join(app, 'node_modules', 'celery-pulse-native'), 'dir');
  fs.symlinkSync('../celery-pulse-native/bin/celery-pulse-native.js', path.join(app, 'node_modules', '.bin', 'celery-pulse-native'));
  for (const name of ['app.js', 'app.mjs', 'worker.js']) fs.writeFileSync(path.join(app, name), IDLE_APP);
  return {
    root,
    app,
    tmp,
    /** Container paths in a command (/app, /tmp) to their places in the sandbox, in one pass. */
    map(text) {
      return text.replace(/(^|[\s"'=:(])\/(app|tmp)(?=\/|[\s"'),;]|$)/gm, (_, before, dir) => before + (dir === 'app' ? app : tmp));
    },
  };
}

/**
 * Runs a command (argv array) to its end, in its own process group so that
 * anything it left in the background is killed with it. Resolves with
 * {status, signal, stdout, stderr, ms}.
 */
function run(argv, { cwd, env, timeout = 30000, input } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(argv[0], argv.slice(1), { cwd, env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input);
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // the group is gone already
      }
    };
    const timer = setTimeout(() => killGroup('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('exit', (status, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      killGroup('SIGKILL'); // background jobs would hold the pipes open
      child.on('close', () => resolve({ status, signal, stdout, stderr, ms }));
    });
  });
}

/** Runs the CLI (bin/celery-pulse-native.js) with `args`. */
function cli(args, { env = cleanEnv(), cwd, timeout } = {}) {
  return run([process.execPath, BIN, ...args], { env, cwd, timeout });
}

/** Starts a long-running child; returns it with a line reader on its stdout. */
function startChild(argv, { cwd, env }) {
  const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
  child.output = '';
  child.errors = '';
  const waiters = [];
  let pending = '';
  child.stderr.on('data', (d) => (child.errors += d));
  child.stdout.on('data', (d) => {
    child.output += d;
    pending += d;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      for (const waiter of [...waiters]) {
        if (!waiter.match(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  child.exited = new Promise((resolve) => child.on('close', (status, signal) => resolve({ status, signal })));
  /** Resolves with the next stdout line equal to `text` (or matching a RegExp). */
  child.line = (text, timeoutMs = 15000) =>
    new Promise((resolve, reject) => {
      const match = (line) => (text instanceof RegExp ? text.test(line) : line === text);
      const timer = setTimeout(() => reject(new Error(`no line ${text} within ${timeoutMs} ms; stdout: ${child.output} stderr: ${child.errors}`)), timeoutMs);
      waiters.push({ match, resolve: (line) => (clearTimeout(timer), resolve(line)) });
    });
  return child;
}

module.exports = { BIN, sandbox, cleanEnv, run, cli, startChild };
