'use strict';
// PM2 7 (from npm) runs the ecosystem file of docs/operations.md (its
// `test: pm2` block, intervals divided by SCALE) for three workers side by
// side: a stuck one is ended by exitOnStall with status 70 and restarted, its
// stall block is in `pm2 logs` and its new record's `previous` names the
// frame; a busy one and one inside an expectStall() window longer than
// exitOnStall are never ended over 30 s. PM2_HOME is a fresh folder, and
// `pm2 kill` always runs.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const vm = require('node:vm');
const { CACHE, STALL_LOG, EXIT_STATUS, block, run, appDir, workerLines, until } = require('./common');

const SCALE = 20; // 10 s -> 0.5 s, 30 s -> 1.5 s, 60 s -> 3 s
const WATCH_MS = 30000;

/** pm2@7 under CACHE/pm2, installed with npm when missing. */
async function pm2Bin() {
  const prefix = path.join(CACHE, 'pm2');
  const bin = path.join(prefix, 'node_modules', 'pm2', 'bin', 'pm2');
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(prefix, { recursive: true });
    await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--no-package-lock', '--prefix', prefix, 'pm2@7'], { timeout: 180000 });
  }
  return bin;
}

/** The documented ecosystem file, evaluated: its apps[0]. */
function documentedApp() {
  const sandbox = { module: { exports: {} } };
  vm.runInNewContext(block('pm2').body, sandbox);
  const app = sandbox.module.exports.apps[0];
  assert.match(app.node_args, /--require celery-pulse-native\/register/, 'the preload is in node_args');
  assert.equal(app.env.NODE_OPTIONS, undefined, 'not in NODE_OPTIONS');
  for (const name of ['CELERY_PULSE_HEARTBEAT_INTERVAL', 'CELERY_PULSE_MAX_STALL', 'CELERY_PULSE_EXIT_ON_STALL']) {
    assert.ok(app.env[name], `the ecosystem file sets ${name}`);
  }
  return app;
}

test('PM2: exitOnStall ends a stuck worker with status 70 and PM2 restarts it; busy and expecting workers live on', { timeout: 240000 }, async (t) => {
  const pm2 = await pm2Bin();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pm2-home-'));
  const dir = appDir(fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pm2-app-')));
  // Every pm2 call gets its own PM2_HOME: without it pm2 starts a daemon in ~/.pm2.
  const env = { ...process.env, PM2_HOME: home };
  for (const name of Object.keys(env)) if (name.startsWith('CELERY_PULSE_') || name === 'NODE_OPTIONS') delete env[name];
  const pm = (args, options = {}) => run(process.execPath, [pm2, ...args], { env, cwd: dir, timeout: 60000, ...options });
  t.after(async () => {
    await pm(['kill'], { allowFail: true, timeout: 30000 });
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const doc = documentedApp();
  const scaled = (name) => String(Number(doc.env[name]) / SCALE);
  const app = (mode) => ({
    ...doc,
    name: `worker-${mode}`,
    script: path.join(dir, doc.script),
    env: {
      ...doc.env,
      CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, `${mode}.health`),
      CELERY_PULSE_HEARTBEAT_INTERVAL: scaled('CELERY_PULSE_HEARTBEAT_INTERVAL'),
      CELERY_PULSE_MAX_STALL: scaled('CELERY_PULSE_MAX_STALL'),
      CELERY_PULSE_EXIT_ON_STALL: scaled('CELERY_PULSE_EXIT_ON_STALL'),
      SUPERVISED_MODE: mode,
    },
  });
  const exitOnStall = Number(scaled('CELERY_PULSE_EXIT_ON_STALL'));
  const interval = Number(scaled('CELERY_PULSE_HEARTBEAT_INTERVAL'));
  const ecosystem = path.join(dir, 'ecosystem.config.js');
  fs.writeFileSync(ecosystem, `module.exports = ${JSON.stringify({ apps: ['busy', 'stuck', 'expect'].map(app) }, null, 2)};\n`);
  await pm(['start', ecosystem]);
  const startedAt = Date.now();

  const jlist = async () => Object.fromEntries(JSON.parse((await pm(['jlist'])).stdout).map((p) => [p.name, p]));
  const logs = async (name) => {
    const { stdout, stderr } = await pm(['logs', name, '--nostream', '--raw', '--lines', '400']);
    return { stdout, stderr };
  };

  // The stuck one: ended, restarted, its stall block logged.
  const restarted = await until('the stuck worker to be restarted', 60000, async () => {
    const p = (await jlist())['worker-stuck'];
    return p.pm2_env.restart_time >= 1 && p.pm2_env.status === 'online' ? p : null;
  });
  const stuckLogs = await logs('worker-stuck');
  const lines = workerLines(stuckLogs.stdout);
  const stuck = lines.find((l) => l.what === 'stuck');
  assert.ok(stuck, `the stuck worker said when it got stuck:\n${stuckLogs.stdout}`);
  assert.match(stuckLogs.stderr, new RegExp(`${STALL_LOG} for .*beats withheld`));
  assert.match(stuckLogs.stderr, /exitOnStall \(3\.0 s\): ending the process with status 70\n\s+at crunchForever \(/);
  const daemonLog = fs.readFileSync(path.join(home, 'pm2.log'), 'utf8');
  assert.match(daemonLog, new RegExp(`App \\[worker-stuck:\\d+\\] exited with code \\[${EXIT_STATUS}\\]`));
  // The new process's record keeps the diagnosis.
  const record = await until('the restarted worker\'s record', 10000, () => {
    try {
      const r = JSON.parse(fs.readFileSync(path.join(dir, 'stuck.health'), 'utf8'));
      return r.pid === restarted.pid ? r : null;
    } catch {
      return null;
    }
  });
  assert.equal(record.previous.state, 'exited');
  assert.equal(record.previous.pid, stuck.pid);
  assert.equal(record.previous.stack[0].function, 'crunchForever');
  // Ended within exitOnStall + interval (+ slack for a loaded machine) of
  // getting stuck; silence counts from the loop's last answer, up to
  // maxStall / 4 before the worker's line.
  const endedMs = Date.parse(record.previous.updatedAt) - stuck.at;
  const maxStall = Number(scaled('CELERY_PULSE_MAX_STALL'));
  assert.ok(endedMs >= (exitOnStall - maxStall / 4 - 0.05) * 1000 && endedMs <= (exitOnStall + interval + 2) * 1000, `ended ${endedMs} ms after getting stuck`);

  // The busy and the expecting ones: never ended over 30 s.
  const left = WATCH_MS - (Date.now() - startedAt);
  if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  const all = await jlist();
  for (const name of ['worker-busy', 'worker-expect']) {
    assert.equal(all[name].pm2_env.restart_time, 0, `${name} was restarted`);
    assert.equal(all[name].pm2_env.status, 'online');
    const { stderr } = await logs(name);
    assert.doesNotMatch(stderr, new RegExp(STALL_LOG), `${name} logged a stall`);
  }
  const expectLines = workerLines((await logs('worker-expect')).stdout);
  assert.ok(expectLines.some((l) => l.what === 'long step done'), 'the expecting worker finished its long step');
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'busy.health'), 'utf8')).state, 'running');
  console.log(`pm2: stuck worker ended ${endedMs} ms after getting stuck (exitOnStall ${exitOnStall} s, interval ${interval} s)`);
});

// Why the docs put the preload in node_args: a NODE_OPTIONS given to `pm2
// start` preloads into the pm2 command itself. That short-lived process pulses
// the file and leaves it "stopped"; the daemon and the worker inherit its
// marker (CELERY_PULSE_REGISTERED) and do not pulse: the worker runs without
// a heartbeat.
test('PM2: the preload in NODE_OPTIONS pulses the pm2 command, not the worker', { timeout: 120000 }, async (t) => {
  const pm2 = await pm2Bin();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pm2-home-'));
  const dir = appDir(fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-pm2-app-')));
  const file = path.join(dir, 'health');
  const env = { ...process.env, PM2_HOME: home, SUPERVISED_MODE: 'idle', CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '0.5' };
  delete env.CELERY_PULSE_REGISTERED;
  const pm = (args, options = {}) => run(process.execPath, [pm2, ...args], { env, cwd: dir, timeout: 60000, ...options });
  t.after(async () => {
    await pm(['kill'], { allowFail: true, timeout: 30000 });
    fs.rmSync(home, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await pm(['start', path.join(dir, 'worker.js'), '--name', 'worker'], {
    env: { ...env, NODE_OPTIONS: `--require ${path.join(dir, 'node_modules', 'celery-pulse-native', 'dist', 'register.js')}` },
  });
  const worker = await until('the worker to run', 30000, async () => {
    const p = JSON.parse((await pm(['jlist'])).stdout).find((x) => x.name === 'worker');
    return p && p.pid > 0 ? p : null;
  });
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(record.state, 'stopped', 'the pm2 command\'s pulse stopped with it');
  assert.notEqual(record.pid, worker.pid, 'the record is not the worker\'s');
  assert.match(worker.pm2_env.CELERY_PULSE_REGISTERED, new RegExp(`^${record.pid}:`), 'the worker inherited the pm2 command\'s marker');
  // Some deadlines later the file is still the pm2 command's: nothing beats it.
  const mtime = fs.statSync(file).mtimeMs;
  await until('two seconds of the worker running', 10000, () => Date.now() - mtime > 2000);
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'something beat the file');
});
