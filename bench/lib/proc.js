'use strict';
// Running the child scripts, and facts about the machine.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { RESULT_PREFIX } = require('./child');

const CHILD_DIR = path.join(__dirname, '..', 'child');

/**
 * Runs bench/child/<name>.js in a fresh node process with `args` as JSON.
 * `wrap` is a command prefix (e.g. strace). Resolves with the child's result
 * object (or {error}) and its wall time; never rejects.
 */
function runChild(name, args, { nodeArgs = [], wrap = [], timeoutMs = 120000, env } = {}) {
  const argv = [...nodeArgs, path.join(CHILD_DIR, `${name}.js`), JSON.stringify(args)];
  const [cmd, ...rest] = wrap.length ? [...wrap, process.execPath, ...argv] : [process.execPath, ...argv];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ error: `${cmd}: ${error.message}`, wallMs: performance.now() - t0 });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (line) {
        resolve({ ...JSON.parse(line.slice(RESULT_PREFIX.length)), wallMs, stderr });
      } else {
        const why = signal ? `killed by ${signal}` : `exit ${status}`;
        resolve({ error: `child ${name} ${why} without a result: ${stderr.trim().slice(-500)}`, wallMs });
      }
    });
  });
}

/** Wall time (ms) of one synchronous command run to completion. */
function timeCommand(cmd, args, options = {}) {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...options });
  return { ms: performance.now() - t0, status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, error: r.error };
}

function commandOutput(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** What the results came from: hardware, kernel, Node, the commit. */
function machine(repoDir) {
  const cpus = os.cpus();
  const header = process.report?.getReport?.().header ?? {};
  return {
    nproc: os.availableParallelism ? os.availableParallelism() : cpus.length,
    cpuModel: cpus[0] ? cpus[0].model.trim() : 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    arch: process.arch,
    glibc: header.glibcVersionRuntime ?? null,
    node: process.version,
    memTotalMB: Math.round(os.totalmem() / 1024 / 1024),
    tmpdir: os.tmpdir(),
    tmpFs: commandOutput('df', ['--output=fstype', os.tmpdir()])?.split('\n').pop() ?? null,
    loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
    commit: commandOutput('git', ['-C', repoDir, 'rev-parse', '--short', 'HEAD']),
  };
}

/** A fresh directory under `base` (the OS temp dir by default), for healthcheck files. */
function tempDir(prefix, base = os.tmpdir()) {
  const dir = fs.mkdtempSync(path.join(base, `pulse-bench-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A writable tmpfs directory (/dev/shm), or null. */
function tmpfsBase() {
  const fsType = commandOutput('df', ['--output=fstype', '/dev/shm'])?.split('\n').pop();
  if (fsType !== 'tmpfs') return null;
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    return '/dev/shm';
  } catch {
    return null;
  }
}

/**
 * Reads the record at `file` every millisecond until `child` exits: each
 * stall's first "stalled" record (its stack and nativeStack) and when it was seen.
 */
function watchStalls(child, file) {
  return new Promise((resolve) => {
    const seen = [];
    let last = '';
    const poll = setInterval(() => {
      let text;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        return;
      }
      if (text === last) return;
      last = text;
      const at = Date.now();
      try {
        const r = JSON.parse(text);
        if (r.state === 'stalled' && !seen.some((s) => s.stalledSince === r.stalledSince)) {
          seen.push({ stalledSince: r.stalledSince, updatedAt: r.updatedAt, stack: r.stack, nativeStack: r.nativeStack, seenAt: at });
        }
      } catch {
        // the record is renamed in whole: a partial read cannot happen
      }
    }, 1);
    child.on('exit', () => {
      clearInterval(poll);
      resolve(seen);
    });
  });
}

module.exports = { runChild, timeCommand, commandOutput, machine, tempDir, tmpfsBase, watchStalls };
