'use strict';
// The core scenarios under other runtimes: Bun and Deno with both strategies,
// and the musl builds of Bun (x64, and arm64 under qemu) loading the musl
// prebuilds through the package's own entry point. Run by test/runtimes/run.sh,
// which prepares the runtimes and names them in PULSE_RT_* variables:
//
//   node test/runtimes/run.js bun deno musl-x64 musl-arm64
//
// Every scenario runs in a child process of the runtime under test with a hard
// timeout, in a temporary folder removed afterwards. Prints one line per
// scenario, then "N passed, N failed"; exits 1 when any failed.
// PULSE_RT_ONLY=<regexp> runs only the scenarios whose name matches.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { sourceDigest } = require('../../scripts/digest.js');

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'celery-pulse-native.js');
const DIGEST = sourceDigest(ROOT);

// Deno: what the package needs (read and write the file, the env settings,
// the host name, the addon through FFI) and the CLI (read, env, sys, run).
const DENO_PERMISSIONS = ['--allow-read', '--allow-write', '--allow-env', '--allow-sys', '--allow-ffi'];
const DENO_CLI_PERMISSIONS = ['--allow-read', '--allow-env', '--allow-sys', '--allow-run'];

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run test/runtimes/run.sh`);
  return value;
}

/**
 * A runtime: how to run a script (`script(file, flags)` -> argv), its env,
 * its timeout, and which strategies and scenarios it covers.
 */
const RUNTIMES = {
  bun: () => ({
    script: (file, flags = []) => [need('PULSE_RT_BUN'), ...flags, file],
    env: {},
    timeout: 30_000,
    strategies: ['native', 'worker'],
    cli: (args) => [need('PULSE_RT_BUN'), BIN, ...args],
    preload: (register, app) => [need('PULSE_RT_BUN'), '--preload', register, app],
    bun: true,
  }),
  deno: () => ({
    script: (file, flags = []) => [need('PULSE_RT_DENO'), 'run', ...DENO_PERMISSIONS, ...flags, file],
    env: { NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
    timeout: 30_000,
    strategies: ['native', 'worker'],
    cli: (args, permissions = DENO_CLI_PERMISSIONS) => [need('PULSE_RT_DENO'), 'run', ...permissions, BIN, ...args],
    // No package.json in the app folder: the node_modules folder is named.
    preload: (register, app) => [need('PULSE_RT_DENO'), 'run', ...DENO_PERMISSIONS, '--node-modules-dir=manual',
      '--preload', register, app],
    deno: true,
  }),
  'musl-x64': () => ({
    script: (file) => [need('PULSE_RT_BUN_MUSL_X64'), file],
    env: { LD_LIBRARY_PATH: need('PULSE_RT_MUSL_X64_LIBS'), LIBC: 'musl' },
    timeout: 30_000,
    strategies: ['native'],
    musl: true,
  }),
  'musl-arm64': () => ({
    script: (file) => ['qemu-aarch64-static', need('PULSE_RT_BUN_MUSL_ARM64'), file],
    env: { QEMU_LD_PREFIX: need('PULSE_RT_MUSL_ARM64_ROOT'), LD_LIBRARY_PATH: need('PULSE_RT_MUSL_ARM64_LIBS'), LIBC: 'musl' },
    timeout: 120_000,
    strategies: ['native'],
    musl: true,
    slow: 3, // emulation: waits are stretched, counts are not
    // qemu-user runs the guest's system calls as the host's: /proc shows the
    // host's (x86-64) call numbers, which the arm64 table names wrongly.
    emulated: true,
  }),
};

// What every scenario script starts with: the package, the strategy, helpers.
function prelude(strategy, file) {
  return `'use strict';
const fs = require('node:fs');
const pkg = require(${JSON.stringify(ROOT)});
const STRATEGY = ${JSON.stringify(strategy)};
const FILE = ${JSON.stringify(file)};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mtime = () => fs.statSync(FILE).mtimeMs;
const record = () => JSON.parse(fs.readFileSync(FILE, 'utf8'));
const spin = (ms, each) => { const end = performance.now() + ms; while (performance.now() < end) if (each) each(); };
const report = (value) => console.log('RESULT ' + JSON.stringify(value));
`;
}

function run(argv, { env = {}, timeout, cwd }) {
  const result = spawnSync(argv[0], argv.slice(1), {
    env: { ...process.env, PREBUILDS_ONLY: '1', ...env },
    encoding: 'utf8',
    timeout,
    killSignal: 'SIGKILL',
    cwd,
  });
  if (result.error) throw result.error;
  if (result.signal) throw new Error(`killed by ${result.signal} (timeout ${timeout} ms?)\n${result.stderr}`);
  return result;
}

/** Runs a scenario script; returns its RESULT object, after checking the exit code. */
function runScript(rt, dir, name, source, { code = 0, flags } = {}) {
  const file = path.join(dir, `${name}.cjs`);
  fs.writeFileSync(file, source);
  const result = run(rt.script(file, flags), { env: rt.env, timeout: rt.timeout, cwd: dir });
  assert.equal(result.status, code, `exit ${result.status}, wanted ${code}\n${result.stdout}\n${result.stderr}`);
  const line = result.stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
  return line ? JSON.parse(line.slice(7)) : undefined;
}

// ---- the scenarios: (rt, strategy, dir) => void, throwing on failure -------

const SCENARIOS = [];
const scenario = (name, fn, { when = () => true, strategyFree = false } = {}) =>
  SCENARIOS.push({ name, fn, when, strategyFree });

scenario('loads the musl prebuild through the package entry point (LIBC=musl)', (rt, strategy, dir) => {
  const out = runScript(rt, dir, 'load', `${prelude(strategy, path.join(dir, 'hc'))}
const loaded = require('node-gyp-build').resolve(${JSON.stringify(ROOT)});
const binding = require('node-gyp-build')(${JSON.stringify(ROOT)});
const p = pkg.start({ file: FILE, interval: 0.2, strategy: 'native' });
report({ loaded, digest: binding.sourceDigest, strategy: p.status().strategy, arch: process.arch });
p.stop();
`);
  assert.match(out.loaded, /prebuilds\/linux-(x64|arm64)\/celery-pulse-native\.musl\.node$/);
  assert.equal(out.digest, DIGEST, 'the musl binary was built from other sources');
  assert.equal(out.strategy, 'native');
}, { when: (rt) => rt.musl });

scenario('beats while the loop is busy but answering', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const out = runScript(rt, dir, 'busy', `${prelude(strategy, path.join(dir, 'hc'))}
const p = pkg.start({ file: FILE, interval: 0.2, maxStall: 30, strategy: STRATEGY });
const seen = new Set();
// Busy for 1.6 s, yielding to the loop every 50 ms: the loop answers the gate.
(async () => {
  const end = Date.now() + ${1600 * slow};
  while (Date.now() < end) { spin(50, () => seen.add(mtime())); await sleep(1); }
  const s = p.status();
  p.stop();
  report({ distinct: seen.size, beats: s.beats, withheld: s.withheld, strategy: s.strategy });
})();
`);
  assert.equal(out.strategy, strategy);
  assert.ok(out.distinct >= 4, `only ${out.distinct} distinct mtimes in 1.6 s at a 0.2 s interval`);
  assert.equal(out.withheld, 0);
});

scenario('listen: /livez answers 503 and /metrics says stalled while the loop is stuck (asked by a bash /dev/tcp client)', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const out = runScript(rt, dir, 'endpoint', `${prelude(strategy, path.join(dir, 'hc'))}
const { spawn } = require('node:child_process');
(async () => {
  const p = pkg.start({ file: FILE, interval: 0.2, maxStall: ${0.5 * slow}, strategy: STRATEGY, listen: '127.0.0.1:0' });
  const port = p.status().listen.split(':')[1];
  const ask = (route) => 'exec 3<>/dev/tcp/127.0.0.1/' + port + '; printf "GET ' + route + ' HTTP/1.0\\\\r\\\\n\\\\r\\\\n" >&3; cat <&3';
  // The client runs while this loop is stuck: it waits 1.5 s, then asks.
  const client = spawn('bash', ['-c', 'sleep ${1.5 * slow}; (' + ask('/livez') + '); echo; echo ====; (' + ask('/metrics') + ')'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  client.stdout.on('data', (d) => (text += d));
  const exited = new Promise((resolve) => client.on('close', resolve));
  await sleep(100);
  spin(${3000 * slow});
  await exited;
  const s = p.status();
  p.stop();
  report({ text, listen: s.listen });
})();
`, { flags: rt.deno ? ['--allow-run', '--allow-net'] : [] });
  assert.match(out.listen, /^127\.0\.0\.1:\d+$/);
  const [livez, metrics] = out.text.split('====');
  assert.match(livez, /^HTTP\/1\.1 503 /, out.text);
  assert.match(livez, /stalled since/);
  assert.match(metrics, /^HTTP\/1\.1 200 /m);
  assert.match(metrics, /^celery_pulse_stalled 1$/m);
}, { when: (rt) => !rt.musl });

scenario('withholds beats while stuck, says why in the record, recovers', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const out = runScript(rt, dir, 'stuck', `${prelude(strategy, path.join(dir, 'hc'))}
(async () => {
  const p = pkg.start({ file: FILE, interval: 0.2, maxStall: ${0.5 * slow}, strategy: STRATEGY });
  await sleep(${500 * slow});
  const before = record();
  // Stuck: no return to the loop for 3 maxStalls.
  spin(${800 * slow});
  const stuckAt = mtime();
  spin(${700 * slow});
  const stuckEnd = mtime();
  const during = record();
  const withheld = p.status().withheld;
  await sleep(${1000 * slow});
  const after = record();
  const s = p.status();
  p.stop();
  report({ before, during, after, stuckAt, stuckEnd, afterMtime: mtime(), withheld, pid: process.pid, stalled: s.stalled });
})();
`);
  assert.equal(out.before.state, 'running');
  assert.equal(out.before.pid, out.pid);
  assert.equal(out.before.strategy, strategy);
  assert.equal(out.stuckEnd, out.stuckAt, 'a beat while the loop was stuck');
  assert.equal(out.during.state, 'stalled');
  assert.match(out.during.message, /stalled since .* beats withheld/);
  // The diagnosis: no stack here (no stack binary for these runtimes, or the
  // worker strategy), with the reason; the thread seen busy on the CPU.
  assert.equal(out.during.stack, null, JSON.stringify(out.during.stack));
  assert.match(out.during.stackUnavailable, /no stack support|"worker" strategy/);
  // Deno lets JavaScript read /proc only with --allow-all: there the worker
  // strategy's view is unknown (all null); the addon reads it natively.
  const procHidden = rt.deno && strategy === 'worker';
  assert.equal(out.during.thread.state, procHidden ? null : 'running', JSON.stringify(out.during.thread));
  assert.ok(Array.isArray(out.during.active));
  assert.ok(out.withheld > 0, 'no withheld deadline counted');
  assert.equal(out.after.state, 'running');
  assert.match(out.after.message, /answering again/);
  assert.ok(out.afterMtime > out.stuckEnd, 'no beat after recovery');
  assert.equal(out.stalled, false);
});

scenario('stuck outside JavaScript: execSync and pbkdf2Sync return right; the records name the child (waitingFor) and the machine frames (nativeStack)', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const hc = path.join(dir, 'hc');
  const out = runScript(rt, dir, 'outside', `${prelude(strategy, hc)}
const { execSync, spawn } = require('node:child_process');
const crypto = require('node:crypto');
// A copy of the record taken by a shell while this thread is stuck.
const snapshot = (name, afterMs) => spawn('sh', ['-c', 'sleep ' + afterMs / 1000 + '; cat "$0" > "$0.' + name + '"', FILE], { stdio: 'ignore' });
const derive = (rounds) => crypto.pbkdf2Sync('password', 'salt', rounds, 32, 'sha256').toString('hex');
(async () => {
  const p = pkg.start({ file: FILE, interval: 0.2, maxStall: ${0.5 * slow}, strategy: STRATEGY });
  await sleep(${500 * slow});
  snapshot('child', ${1500 * slow});
  const slept = execSync('sleep ${2.5 * slow}; echo slept', { encoding: 'utf8' });
  await sleep(${800 * slow});
  const afterChild = p.status().lastStall;
  // One call long enough to stay inside the crypto library for 2.5 s.
  const t0 = performance.now();
  derive(20000);
  const rounds = Math.max(20000, Math.round((20000 * ${2500 * slow}) / (performance.now() - t0)));
  await sleep(${500 * slow});
  snapshot('key', ${1500 * slow});
  const key = derive(rounds);
  await sleep(${800 * slow});
  const afterKey = p.status().lastStall;
  p.stop();
  const read = (name) => JSON.parse(fs.readFileSync(FILE + '.' + name, 'utf8'));
  report({ slept, child: read('child'), afterChild, rounds, key, expected: crypto.pbkdf2Sync('password', 'salt', rounds, 32, 'sha256').toString('hex'), inKey: read('key'), afterKey });
})();
`, { flags: rt.deno ? ['--allow-run'] : [] });
  const show = JSON.stringify(out);
  // The interrupted calls give their right results.
  assert.equal(out.slept, 'slept\n');
  assert.equal(out.key, out.expected);
  // The child: pid, command and state, in the record while stuck and in lastStall
  // after (Deno hides /proc from JavaScript: the worker strategy cannot look).
  assert.equal(out.child.state, 'stalled', show);
  if (rt.deno && strategy === 'worker') {
    assert.equal(out.child.waitingFor, null, show);
  } else if (rt.emulated) {
    console.log(`    waitingFor not checked under qemu-user: its /proc gives the host's system call numbers (read as ${out.child.thread.syscall})`);
  } else {
    assert.equal(out.child.waitingFor?.kind, 'child', show);
    assert.match(out.child.waitingFor.command, /sleep/, show);
    assert.equal(typeof out.child.waitingFor.pid, 'number', show);
    assert.equal(out.afterChild?.waitingFor?.pid, out.child.waitingFor.pid, show);
  }
  assert.equal(out.inKey.state, 'stalled', show);
  if (strategy === 'native') {
    // No JavaScript stack here (no stack binary for these runtimes): the
    // machine frames, innermost first, each with its module.
    for (const rec of [out.child, out.inKey]) {
      assert.ok(Array.isArray(rec.nativeStack) && rec.nativeStack.length >= 1, show);
      assert.ok(rec.nativeStack.every((f) => typeof f.module === 'string' && f.module.length > 0), show);
    }
    assert.ok(Array.isArray(out.afterKey.nativeStack) && out.afterKey.nativeStack.length >= 1, show);
    const top = (rec) => rec.nativeStack.slice(0, 2).map((f) => `${f.symbol ?? '?'} (${f.module})`).join(' < ');
    console.log(`    innermost frames: in execSync ${top(out.child)}; in pbkdf2Sync ${top(out.inKey)}`);
  } else {
    assert.equal(out.inKey.nativeStack, null, show);
    assert.match(out.inKey.nativeStackUnavailable, /"worker" strategy/, show);
  }
});

scenario('stop(): a "stopped" record, and no beat after', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const out = runScript(rt, dir, 'stop', `${prelude(strategy, path.join(dir, 'hc'))}
(async () => {
  const p = pkg.start({ file: FILE, interval: 0.1, strategy: STRATEGY });
  await sleep(${400 * slow});
  p.stop();
  p.stop();
  const at = mtime();
  await sleep(${600 * slow});
  report({ record: record(), same: mtime() === at, running: p.status().running, beats: p.status().beats });
})();
`);
  assert.equal(out.record.state, 'stopped');
  assert.ok(out.same, 'a beat after stop()');
  assert.equal(out.running, false);
  assert.ok(out.beats >= 2, `beats ${out.beats}`);
});

scenario('natural exit with a running pulse: exit 0, prompt, "stopped" record', (rt, strategy, dir) => {
  const file = path.join(dir, 'hc');
  const t0 = Date.now();
  runScript(rt, dir, 'natural', `${prelude(strategy, file)}
pkg.start({ file: FILE, interval: 0.1, strategy: STRATEGY });
setTimeout(() => console.log('done'), 300);
`);
  assert.ok(Date.now() - t0 < rt.timeout / 2, 'the pulse kept the process alive');
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).state, 'stopped');
});

scenario('process.exit(0) with a running pulse: exit 0, "stopped" record', (rt, strategy, dir) => {
  const file = path.join(dir, 'hc');
  runScript(rt, dir, 'exit', `${prelude(strategy, file)}
pkg.start({ file: FILE, interval: 0.1, strategy: STRATEGY });
setTimeout(() => process.exit(0), 300);
`);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).state, 'stopped');
});

scenario('worker.terminate() of the thread that owns a pulse: no beat after', (rt, strategy, dir) => {
  const slow = rt.slow || 1;
  const out = runScript(rt, dir, 'terminate', `${prelude(strategy, path.join(dir, 'hc'))}
const { Worker } = require('node:worker_threads');
const owner = new Worker(\`
  const { parentPort, workerData } = require('node:worker_threads');
  const pulse = require(workerData.root).start({ file: workerData.file, interval: 0.1, strategy: workerData.strategy });
  parentPort.postMessage('started');
  setInterval(() => {}, 1000);
\`, { eval: true, workerData: { root: ${JSON.stringify(ROOT)}, file: FILE, strategy: STRATEGY } });
owner.once('message', async () => {
  await sleep(${500 * slow});
  await owner.terminate();
  await sleep(${150 * slow}); // a beat in progress at the terminate may still land
  const at = mtime();
  const state = record().state;
  await sleep(${1500 * slow});
  report({ same: mtime() === at, state, later: record().state });
});
`);
  assert.ok(out.same, 'the heartbeat kept beating after its owner was terminated');
  assert.equal(out.later, out.state, 'the record changed after the owner was terminated');
}, { when: (rt) => !rt.musl });

/** An app folder with the package installed as npm would, and its main.cjs reporting the record. */
function preloadApp(dir) {
  // A copy in the app's node_modules (Deno treats a package outside
  // node_modules, as a symlink resolves, as its own code).
  const app = path.join(dir, 'app');
  const installed = path.join(app, 'node_modules', 'celery-pulse-native');
  for (const entry of ['package.json', 'dist', 'prebuilds']) {
    fs.cpSync(path.join(ROOT, entry), path.join(installed, entry), { recursive: true });
  }
  fs.cpSync(path.join(ROOT, 'node_modules', 'node-gyp-build'), path.join(app, 'node_modules', 'node-gyp-build'), { recursive: true });
  const file = path.join(dir, 'hc');
  fs.writeFileSync(path.join(app, 'main.cjs'), `'use strict';
const fs = require('node:fs');
setTimeout(() => {
  const rec = JSON.parse(fs.readFileSync(${JSON.stringify(file)}, 'utf8'));
  console.log('RESULT ' + JSON.stringify({ rec, pid: process.pid, marker: process.env.CELERY_PULSE_REGISTERED }));
}, 600);
`);
  return { app, file };
}

/** Runs the app with a preload and checks that it pulsed from the env vars and stopped at exit. */
function checkPreload(rt, strategy, app, file, argv) {
  const result = run(argv, {
    env: { ...rt.env, CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '0.1', CELERY_PULSE_STRATEGY: strategy },
    timeout: rt.timeout,
    cwd: app,
  });
  assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
  const line = result.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `no result\n${result.stdout}\n${result.stderr}`);
  const out = JSON.parse(line.slice(7));
  assert.equal(out.rec.state, 'running');
  assert.equal(out.rec.pid, out.pid);
  assert.equal(out.rec.strategy, strategy);
  assert.equal(out.marker, `${out.pid}:${file}`);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).state, 'stopped', 'not stopped at exit');
}

scenario('the register preload starts a pulse from the env vars', (rt, strategy, dir) => {
  const { app, file } = preloadApp(dir);
  const register = rt.deno ? path.join('node_modules', 'celery-pulse-native', 'dist', 'register.js') : 'celery-pulse-native/register';
  checkPreload(rt, strategy, app, file, rt.preload(register, 'main.cjs'));
}, { when: (rt) => Boolean(rt.preload) });

scenario('the register preload in an app with a package.json, no --node-modules-dir', (rt, strategy, dir) => {
  const { app, file } = preloadApp(dir);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  const register = path.join('node_modules', 'celery-pulse-native', 'dist', 'register.js');
  checkPreload(rt, strategy, app, file, [need('PULSE_RT_DENO'), 'run', ...DENO_PERMISSIONS, '--preload', register, 'main.cjs']);
}, { when: (rt) => Boolean(rt.deno) });

scenario('the register preload from bunfig.toml', (rt, strategy, dir) => {
  const { app, file } = preloadApp(dir);
  fs.writeFileSync(path.join(app, 'bunfig.toml'), 'preload = ["celery-pulse-native/register"]\n');
  checkPreload(rt, strategy, app, file, [need('PULSE_RT_BUN'), 'main.cjs']);
}, { when: (rt) => Boolean(rt.bun) });

scenario('the CLI: fresh exits 0, stale exits 1, a usage error 2', (rt, _strategy, dir) => {
  const file = path.join(dir, 'hc');
  fs.writeFileSync(file, '');
  const check = (...args) => run(rt.cli(['check', '--file', file, ...args]), { env: rt.env, timeout: rt.timeout, cwd: dir });
  let result = check('--max-age', '60');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^fresh: /);
  const old = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, old, old);
  result = check('--max-age', '60');
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stdout, /^stale: /);
  result = check('--max-age', 'soon');
  assert.equal(result.status, 2);
  assert.match(result.stderr, /--max-age/);
}, { when: (rt) => Boolean(rt.cli), strategyFree: true });

scenario('the CLI under Deno without a permission it needs: exit 2, naming it', (rt, _strategy, dir) => {
  const file = path.join(dir, 'hc');
  fs.writeFileSync(file, '');
  // A stale record of another host asks for the host name; of this host
  // (none recorded), whether its process still runs.
  const other = { state: 'stopped', pid: 999999999, hostname: 'elsewhere' };
  const here = { state: 'stopped', pid: 999999999 };
  const cases = [
    [[], other, '--allow-read'],
    [['--allow-read'], other, '--allow-env'],
    [['--allow-read', '--allow-env'], other, '--allow-sys'],
    [['--allow-read', '--allow-env', '--allow-sys'], here, '--allow-run'],
  ];
  for (const [permissions, rec, missing] of cases) {
    fs.writeFileSync(file, JSON.stringify(rec));
    const old = new Date(Date.now() - 3_600_000);
    fs.utimesSync(file, old, old);
    const result = run(rt.cli(['check', '--file', file], permissions), { env: rt.env, timeout: rt.timeout, cwd: dir });
    assert.equal(result.status, 2, `with ${permissions.join(' ') || 'no permissions'}: exit ${result.status}\n${result.stderr}`);
    assert.match(result.stderr, new RegExp(`permission the CLI needs: ${missing}\\b`));
    assert.doesNotMatch(result.stderr, /Uncaught/);
  }
}, { when: (rt) => Boolean(rt.deno), strategyFree: true });

scenario('auto without --allow-ffi falls back to the worker strategy, with the warning', (rt, _strategy, dir) => {
  const perms = DENO_PERMISSIONS.filter((p) => p !== '--allow-ffi');
  const file = path.join(dir, 'fallback.cjs');
  fs.writeFileSync(file, `${prelude('auto', path.join(dir, 'hc'))}
const p = pkg.start({ file: FILE, interval: 0.2 });
report({ strategy: p.status().strategy });
p.stop();
`);
  const result = run([need('PULSE_RT_DENO'), 'run', ...perms, file], { env: rt.env, timeout: rt.timeout, cwd: dir });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /RESULT \{"strategy":"worker"\}/);
  assert.match(result.stderr, /CeleryPulseWarning/);
  assert.match(result.stderr, /--allow-ffi/);
}, { when: (rt) => Boolean(rt.deno), strategyFree: true });

// ---- the runner -------------------------------------------------------------

// PULSE_RT_ONLY: a regular expression; only the scenarios whose name matches run.
const ONLY = process.env.PULSE_RT_ONLY ? new RegExp(process.env.PULSE_RT_ONLY) : undefined;

function main(names) {
  if (names.length === 0) names = Object.keys(RUNTIMES);
  let passed = 0;
  let failed = 0;
  for (const name of names) {
    if (!RUNTIMES[name]) {
      console.error(`unknown runtime ${JSON.stringify(name)}; known: ${Object.keys(RUNTIMES).join(', ')}`);
      process.exit(2);
    }
    const rt = RUNTIMES[name]();
    for (const sc of SCENARIOS) {
      if (!sc.when(rt) || (ONLY && !ONLY.test(sc.name))) continue;
      for (const strategy of sc.strategyFree ? ['-'] : rt.strategies) {
        const label = `${name}${sc.strategyFree ? '' : ` ${strategy}`}: ${sc.name}`;
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-rt-'));
        const t0 = Date.now();
        try {
          sc.fn(rt, strategy, dir);
          passed++;
          console.log(`ok - ${label} (${Date.now() - t0} ms)`);
        } catch (error) {
          failed++;
          console.log(`not ok - ${label} (${Date.now() - t0} ms)\n  ${String(error.stack || error).replace(/\n/g, '\n  ')}`);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
        }
      }
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
}

main(process.argv.slice(2));
