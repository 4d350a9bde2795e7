'use strict';
// `docker run --restart=on-failure` and Compose's `restart: on-failure` on a
// real engine (test/supervisors/run.sh starts the dockerd this talks to):
// the lines of docs/operations.md's `test: docker run` and `test: compose`
// blocks, exitOnStall divided by SCALE. A stuck worker exits with status 70 and
// the engine restarts it, its stall block in `docker logs` and its new record's
// `previous` naming the frame; a busy one and one inside an expectStall()
// window are never ended over 30 s; a healthy one paused 8 s and unpaused is
// not ended and logs no stall.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { baseRoot } = require('../engine/base-root');
const { STALL_LOG, EXIT_STATUS, block, run, appDir, workerLines, sleep, until } = require('./common');

const DOCKER = process.env.ENGINE_DOCKER || '/usr/bin/docker';
const SCALE = 20; // exitOnStall 60 s -> 3 s
const WATCH_MS = 30000;
const TAG = `pulse-supervised-${process.pid}`;
const BASE = `${TAG}-base`;

if (!process.env.DOCKER_HOST) {
  test('docker run --restart', { skip: 'no DOCKER_HOST: run test/supervisors/run.sh, which starts its own dockerd' }, () => {});
  return;
}

const docker = (args, options = {}) => run(DOCKER, args, { timeout: 60000, ...options });

/** `docker run` flags of the documented line: everything between `run` and the image, with `-d`. */
function runFlags() {
  const line = block('docker run').body.replace(/\\\n\s*/g, ' ').trim();
  const words = line.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ['docker', 'run'], line);
  const flags = words.slice(2, -1);
  assert.ok(flags.includes('--restart=on-failure'), line);
  return flags;
}

/** The Compose service as `docker run` flags: restart, init and environment. */
function composeFlags() {
  const body = block('compose').body;
  const restart = /^\s+restart: (\S+)$/m.exec(body);
  assert.ok(restart, 'the Compose service has restart:');
  const flags = ['-d', `--restart=${restart[1]}`];
  if (/^\s+init: true$/m.test(body)) flags.push('--init');
  const env = /^(\s+)environment:\n((?:\1\s+\S.*\n)+)/m.exec(body);
  assert.ok(env, 'the Compose service has environment:');
  for (const m of env[2].matchAll(/^\s+(\w+): "?([^"\n]*)"?$/gm)) flags.push('-e', `${m[1]}=${m[2]}`);
  return flags;
}

/** exitOnStall scaled: -e CELERY_PULSE_EXIT_ON_STALL=60 -> 3. */
function scaled(flags) {
  return flags.map((f) => f.replace(/^(CELERY_PULSE_EXIT_ON_STALL)=(\d+(?:\.\d+)?)$/, (_, k, v) => `${k}=${Number(v) / SCALE}`));
}

test.before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-supervised-base-'));
  try {
    baseRoot(path.join(dir, 'root'));
    await new Promise((resolve, reject) => {
      const tar = spawn('tar', ['-C', path.join(dir, 'root'), '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const child = execFile(DOCKER, ['import', '-', BASE], { timeout: 60000, killSignal: 'SIGKILL' }, (e, out, err) => (e ? reject(new Error(`docker import: ${err}`)) : resolve()));
      tar.stdout.pipe(child.stdin);
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.after(() => docker(['rmi', '-f', BASE], { allowFail: true }));

test('docker run --restart=on-failure and Compose restart: a stuck worker exits 70 and is restarted; busy and expecting ones live on', { timeout: 180000 }, async (t) => {
  const app = appDir(fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-supervised-app-')));
  const health = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-supervised-health-'));
  fs.chmodSync(health, 0o777);
  const containers = [
    { name: `${TAG}-stuck-run`, mode: 'stuck', flags: ['-d', ...runFlags()] },
    { name: `${TAG}-stuck-compose`, mode: 'stuck', flags: composeFlags() },
    { name: `${TAG}-busy-run`, mode: 'busy', flags: ['-d', ...runFlags()] },
    { name: `${TAG}-expect-compose`, mode: 'expect', flags: composeFlags() },
  ];
  t.after(async () => {
    await docker(['rm', '-f', ...containers.map((c) => c.name)], { allowFail: true });
    fs.rmSync(app, { recursive: true, force: true });
    fs.rmSync(health, { recursive: true, force: true });
  });
  const since = Math.floor(Date.now() / 1000) - 1;
  for (const c of containers) {
    await docker(['run', '--name', c.name, '--network', 'none', ...scaled(c.flags.filter((f) => f !== '-d')), '-d',
      '-v', `${app}:/app:ro`, '-v', `${health}:/health`, '-w', '/app',
      '-e', 'NODE_OPTIONS=--require celery-pulse-native/register',
      '-e', `CELERY_PULSE_HEALTHCHECK_FILE=/health/${c.mode}-${c.name.endsWith('run') ? 'run' : 'compose'}.health`,
      '-e', 'CELERY_PULSE_HEARTBEAT_INTERVAL=0.5', '-e', 'CELERY_PULSE_MAX_STALL=1.5',
      '-e', `SUPERVISED_MODE=${c.mode}`, BASE, 'node', 'worker.js']);
  }
  const startedAt = Date.now();
  const inspect = async (name) => JSON.parse((await docker(['inspect', name])).stdout)[0];

  for (const c of containers.filter((x) => x.mode === 'stuck')) {
    const state = await until(`${c.name} to be restarted`, 60000, async () => {
      const i = await inspect(c.name);
      return i.RestartCount >= 1 && i.State.Running ? i : null;
    });
    const { stdout, stderr } = await docker(['logs', c.name]);
    const stuck = workerLines(stdout).find((l) => l.what === 'stuck');
    assert.ok(stuck, `${c.name} said when it got stuck:\n${stdout}`);
    assert.match(stderr, new RegExp(`${STALL_LOG} for .*beats withheld`));
    assert.match(stderr, /exitOnStall \(3\.0 s\): ending the process with status 70\n\s+at crunchForever \(/);
    const file = path.join(health, c.name.endsWith('run') ? 'stuck-run.health' : 'stuck-compose.health');
    const record = await until(`${c.name}'s new record`, 15000, () => {
      try {
        const r = JSON.parse(fs.readFileSync(file, 'utf8'));
        return r.pid === state.State.Pid || r.previous ? r : null;
      } catch {
        return null;
      }
    });
    assert.equal(record.previous.state, 'exited');
    assert.equal(record.previous.stack[0].function, 'crunchForever');
    c.endedMs = Date.parse(record.previous.updatedAt) - stuck.at;
  }
  // The exit status, from the engine's events.
  const events = (await docker(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000)),
    '--filter', 'event=die', '--format', '{{json .}}'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  for (const c of containers.filter((x) => x.mode === 'stuck')) {
    const died = events.filter((e) => e.Actor.Attributes.name === c.name);
    assert.ok(died.length >= 1, `no die event for ${c.name}`);
    assert.ok(died.every((e) => e.Actor.Attributes.exitCode === String(EXIT_STATUS)), JSON.stringify(died.map((e) => e.Actor.Attributes.exitCode)));
  }

  const left = WATCH_MS - (Date.now() - startedAt);
  if (left > 0) await sleep(left);
  for (const c of containers.filter((x) => x.mode !== 'stuck')) {
    const i = await inspect(c.name);
    assert.equal(i.RestartCount, 0, `${c.name} was restarted`);
    assert.ok(i.State.Running, `${c.name} is not running`);
    const { stdout, stderr } = await docker(['logs', c.name]);
    assert.doesNotMatch(stderr, new RegExp(STALL_LOG), `${c.name} logged a stall`);
    if (c.mode === 'expect') assert.ok(workerLines(stdout).some((l) => l.what === 'long step done'), 'the long step ran');
  }
  console.log(`# docker: stuck workers ended ${containers.filter((c) => c.endedMs).map((c) => `${c.endedMs} ms`).join(', ')} after getting stuck`);
});

// Needs the heartbeat to give the loop a fresh chance after a late wake-up
// (a process frozen whole is not stuck).
test('docker pause: a healthy container with exitOnStall, frozen 8 s and thawed, is not ended and logs no stall', { timeout: 120000 }, async (t) => {
  const app = appDir(fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-supervised-app-')));
  const name = `${TAG}-paused`;
  t.after(async () => {
    await docker(['rm', '-f', name], { allowFail: true });
    fs.rmSync(app, { recursive: true, force: true });
  });
  await docker(['run', '--name', name, '--network', 'none', ...scaled(runFlags()), '-d', '-v', `${app}:/app:ro`, '-w', '/app',
    '-e', 'NODE_OPTIONS=--require celery-pulse-native/register', '-e', 'CELERY_PULSE_HEALTHCHECK_FILE=/tmp/health',
    '-e', 'CELERY_PULSE_HEARTBEAT_INTERVAL=0.5', '-e', 'CELERY_PULSE_MAX_STALL=1.5', '-e', 'SUPERVISED_MODE=idle', BASE, 'node', 'worker.js']);
  // The file's mtime (ms) as the container sees it; null once it is not running.
  // The probe's node gets no NODE_OPTIONS: the preload would pulse the same
  // file from the probe process and leave its own "stopped" record there.
  const mtime = async () => {
    const r = await docker(['exec', '-e', 'NODE_OPTIONS=', name, 'node', '-e', "process.stdout.write(String(require('fs').statSync('/tmp/health').mtimeMs))"], { allowFail: true });
    return r.status === 0 ? Number(r.stdout) : null;
  };
  const running = async () => JSON.parse((await docker(['inspect', name])).stdout)[0].State.Running;
  const started = Date.now();
  await until(`${name} to beat`, 20000, async () => (await mtime()) > started);
  await docker(['pause', name]);
  await sleep(8000); // the freeze itself
  await docker(['unpause', name]);
  const thawed = Date.now();
  // Three deadlines after the thaw: beats resumed, or the process was ended.
  await until('beats after the thaw', 20000, async () => (await mtime()) > thawed + 1500 || !(await running()));
  const i = JSON.parse((await docker(['inspect', name])).stdout)[0];
  assert.equal(i.RestartCount, 0, 'the thawed container was ended');
  assert.ok(i.State.Running);
  const { stdout, stderr } = await docker(['logs', name]);
  assert.doesNotMatch(stdout + stderr, new RegExp(STALL_LOG), 'the thawed container logged a stall');
  const record = JSON.parse((await docker(['exec', name, 'cat', '/tmp/health'])).stdout);
  assert.equal(record.state, 'running');
  assert.equal(record.lastStall, undefined);
});
