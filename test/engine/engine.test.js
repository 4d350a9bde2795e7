'use strict';
// The README's Docker recipes under a real engine. test/engine/run.sh starts
// the dockerd this talks to (DOCKER_HOST) and stops it; run that, not this.
//
// The images are built with no registry: a base imported from the host's node,
// its libraries, BusyBox and tini; this checkout's `npm pack` output installed
// in /app/node_modules with its runtime dependencies and the committed prebuild
// (no compiler in the image). Their WORKDIR, ENV, HEALTHCHECK, ENTRYPOINT and
// CMD lines are read from the `test: dockerfile` blocks at test time (the image
// in README.md, the shell-form HEALTHCHECK in docs/operations.md), only the
// intervals divided by SCALE, so the documentation and this test cannot drift.
//
// A busy worker (synchronous blocks of maxStall / 2, over and over) and a stuck
// one (the same, then an endless loop in crunchForever) of each probe form run
// side by side, as containers and then as Swarm services.
//
// The stall diagnosis, asserted by default (0 turns either off, to debug):
//   ENGINE_EXPECT_STALL_LOG    the stuck container's `docker logs` has
//                              "celery-pulse-native: event loop stalled"
//   ENGINE_EXPECT_FRAME        that log and the health log's check line name crunchForever
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile, spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const readme = require('../readme');
const { baseRoot } = require('./base-root');

const PKG = path.join(__dirname, '..', '..');
const DOCKER = process.env.ENGINE_DOCKER || '/usr/bin/docker';
const OUT = process.env.ENGINE_OUT || path.join(os.tmpdir(), 'pulse-engine-logs');
const EXPECT_STALL_LOG = process.env.ENGINE_EXPECT_STALL_LOG !== '0';
const EXPECT_FRAME = process.env.ENGINE_EXPECT_FRAME !== '0';
const STALL_LOG = 'celery-pulse-native: event loop stalled';
const FRAME = 'crunchForever';
// The README's intervals divided by this (10 s becomes 2 s); ENGINE_SCALE=1
// runs the recipes at their own values (several minutes; raise ENGINE_STEP_SECONDS).
const SCALE = Number(process.env.ENGINE_SCALE || 5);
// Added to every computed bound: probes that start slowly on a loaded machine,
// the engine's own bookkeeping (up to 4 s over the bound seen at the CI's scale).
const SLACK_S = 12;
const TAG = `pulse-engine-${process.pid}`;
const IMAGES = { base: `${TAG}-base`, check: `${TAG}-check`, shell: `${TAG}-shell`, noinit: `${TAG}-check-noinit` };

if (!process.env.DOCKER_HOST) {
  test('the engine test', { skip: 'no DOCKER_HOST: run test/engine/run.sh, which starts its own dockerd' }, () => {});
  return;
}

/** Runs docker to its end under a hard timeout; rejects on a non-zero exit unless allowFail. */
function docker(args, { timeout = 30000, allowFail = false } = {}) {
  return new Promise((resolve, reject) => {
    execFile(DOCKER, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 64 << 20, env: { ...process.env, DOCKER_BUILDKIT: '0' } }, (error, stdout, stderr) => {
      const status = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      if (status !== 0 && !allowFail) {
        reject(new Error(`docker ${args.join(' ')} ${error.killed ? `timed out after ${timeout} ms` : `exited ${status}`}\n${stdout}${stderr}`));
      } else resolve({ status, stdout, stderr });
    });
  });
}

const inspect = async (ids) => JSON.parse((await docker(['inspect', ...ids])).stdout);
const seconds = (ms) => Number((ms / 1000).toFixed(1));

/** `10s` -> `2s`; a plain number of seconds -> its scaled number. */
function scaleDuration(value) {
  const m = /^(\d+(?:\.\d+)?)(s?)$/.exec(value);
  assert.ok(m, `cannot scale the README's duration "${value}"`);
  return `${Number(m[1]) / SCALE}${m[2]}`;
}

/**
 * The README's image recipe: its WORKDIR, ENV, ENTRYPOINT, CMD and both
 * HEALTHCHECK forms, scaled. Also the numbers a stuck worker's time to
 * unhealthy is bounded by.
 */
function recipe() {
  const blocks = readme.blocks().filter((b) => b.marker === 'dockerfile');
  const parsed = blocks.map((b) => ({ where: b.where, instructions: readme.dockerInstructions(b.body) }));
  const main = parsed.find((b) => b.instructions.some((i) => i.instruction === 'CMD'));
  assert.ok(main, 'README.md or docs/ has a Dockerfile block with a CMD');
  const shellBlock = parsed.find((b) => b !== main && b.instructions.some((i) => i.instruction === 'HEALTHCHECK'));
  assert.ok(shellBlock, 'README.md or docs/ has a second HEALTHCHECK block (the shell form)');
  const only = (block, name) => {
    const found = block.instructions.filter((i) => i.instruction === name);
    assert.ok(found.length <= 1, `${block.where}: more than one ${name}`);
    return found[0]?.args;
  };
  const env = {};
  for (const { instruction, args } of main.instructions) if (instruction === 'ENV') Object.assign(env, readme.dockerEnv(args));
  for (const name of ['CELERY_PULSE_HEARTBEAT_INTERVAL', 'CELERY_PULSE_MAX_STALL']) {
    assert.ok(env[name], `the README image sets ${name}`);
    env[name] = scaleDuration(env[name]);
  }
  assert.match(env.NODE_OPTIONS ?? '', /celery-pulse-native\/register/, 'the README image preloads the register module');
  const healthcheck = (block) => {
    const args = only(block, 'HEALTHCHECK');
    const { options, argv } = readme.dockerHealthcheck(args);
    const scaled = args
      .replace(/--(interval|start-period)=(\S+)/g, (_, name, value) => `--${name}=${scaleDuration(value)}`)
      // the shell form's threshold in whole seconds
      .replace(/ -lt (\d+) \]/, (_, n) => ` -lt ${scaleDuration(n)} ]`);
    const interval = Number.parseFloat(scaleDuration(options.interval ?? '30s'));
    const retries = Number(options.retries ?? 3);
    const cli = /celery-pulse-native$/.test(argv[0]);
    const shellLimit = /-lt (\d+(?:\.\d+)?) \]/.exec(scaled);
    const maxAgeArg = argv.indexOf('--max-age');
    const maxAge = cli
      ? (maxAgeArg >= 0 ? Number(scaleDuration(argv[maxAgeArg + 1])) : 2 * Number(env.CELERY_PULSE_HEARTBEAT_INTERVAL))
      : Number(shellLimit?.[1]);
    assert.ok(Number.isFinite(maxAge), `cannot read the probe threshold of ${args}`);
    return { line: `HEALTHCHECK ${scaled}`, interval, retries, maxAge, cli, timeout: Number.parseFloat(options.timeout ?? '30s') };
  };
  const check = healthcheck(main);
  const shell = healthcheck(shellBlock);
  assert.ok(check.cli && !shell.cli, 'the first HEALTHCHECK runs the bundled command, the second the shell one-liner');
  const entrypoint = only(main, 'ENTRYPOINT');
  const lines = (hc, withEntrypoint) => [
    `FROM ${IMAGES.base}`,
    `COPY app/ ${only(main, 'WORKDIR') ?? '/app'}/`,
    `WORKDIR ${only(main, 'WORKDIR') ?? '/'}`,
    `ENV ${Object.entries(env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`,
    hc.line,
    ...(entrypoint && withEntrypoint ? [`ENTRYPOINT ${entrypoint}`] : []),
    `CMD ${only(main, 'CMD')}`,
  ];
  const maxStall = Number(env.CELERY_PULSE_MAX_STALL);
  // The README's bound on the time from stuck to unhealthy.
  const bound = (hc) => maxStall + hc.maxAge + hc.retries * hc.interval;
  return {
    env,
    entrypoint,
    maxStall,
    check: { ...check, bound: bound(check), dockerfile: lines(check, true) },
    shell: { ...shell, bound: bound(shell), dockerfile: lines(shell, true) },
    noinit: { ...check, bound: bound(check), dockerfile: lines(check, false) },
  };
}

const R = recipe();
// How long the stuck worker works before it gets stuck: past its first probes,
// so that it is healthy first.
const STUCK_AFTER_MS = Math.max(8000, (2 * R.check.interval + 2) * 1000);
// Per-test hard timeouts, from the bounds below plus the engine's stop grace
// period and restart delay.
const PHASE_MS = (STUCK_AFTER_MS + (Math.max(R.check.bound, R.shell.bound) + 10 + 5) * 1000) * 2 + 60000;

/**
 * /app: worker.js and node_modules with the packed package (run.sh compiled
 * dist/ first), its runtime dependencies from this checkout and its bin link.
 */
function appDir(dir) {
  const modules = path.join(dir, 'node_modules');
  const pkgDir = path.join(modules, 'celery-pulse-native');
  fs.mkdirSync(pkgDir, { recursive: true });
  const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: PKG,
    encoding: 'utf8',
    timeout: 60000,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  assert.equal(packed.status, 0, packed.stderr);
  const tarball = path.join(dir, JSON.parse(packed.stdout)[0].filename);
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', pkgDir, '--strip-components=1'], { encoding: 'utf8' });
  assert.equal(untar.status, 0, untar.stderr);
  fs.rmSync(tarball);
  assert.ok(fs.existsSync(path.join(pkgDir, 'prebuilds', 'linux-x64', 'celery-pulse-native.glibc.node')), 'the packed package carries the x64 prebuild');
  for (const dep of Object.keys(require(path.join(PKG, 'package.json')).dependencies)) {
    fs.cpSync(path.join(PKG, 'node_modules', dep), path.join(modules, dep), { recursive: true });
  }
  fs.mkdirSync(path.join(modules, '.bin'));
  fs.chmodSync(path.join(pkgDir, 'bin', 'celery-pulse-native.js'), 0o755);
  fs.symlinkSync('../celery-pulse-native/bin/celery-pulse-native.js', path.join(modules, '.bin', 'celery-pulse-native'));
  fs.copyFileSync(path.join(__dirname, 'worker.js'), path.join(dir, 'worker.js'));
}

/** `docker events` from now on, kept as parsed objects until stop(). */
function events() {
  const seen = [];
  const child = spawn(DOCKER, ['events', '--format', '{{json .}}'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let rest = '';
  child.stdout.on('data', (d) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop();
    for (const line of lines) if (line.trim()) seen.push(JSON.parse(line));
  });
  return {
    seen,
    /** Container events {action, ms, id, name, service}. */
    containers: () =>
      seen
        .filter((e) => e.Type === 'container')
        .map((e) => ({
          action: e.Action,
          ms: e.timeNano / 1e6,
          id: e.Actor.ID,
          name: e.Actor.Attributes.name,
          service: e.Actor.Attributes['com.docker.swarm.service.name'],
          exitCode: e.Actor.Attributes.exitCode,
        })),
    stop: () => child.kill('SIGKILL'),
  };
}

/**
 * A busy container's probes, every one of them (the health log keeps only the
 * last 5): each probe is an exec whose exec_die event carries its exit code.
 * None may have failed, and there must have been some.
 */
function assertNoProbeFailed(ev, id, label, windowS) {
  const probes = ev.containers().filter((e) => e.id === id && e.action.startsWith('exec_die'));
  assert.ok(probes.length >= 3, `${label}: only ${probes.length} probes seen in ${windowS} s`);
  assert.ok(probes.every((e) => e.exitCode !== undefined), `${label}: exec_die events without an exit code`);
  const failed = probes.filter((e) => e.exitCode !== '0');
  assert.equal(failed.length, 0, `busy ${label} failed ${failed.length} of its ${probes.length} probes in ${windowS} s`);
  return probes.length;
}

/** When the worker in this container got stuck (its own stdout line), in ms. */
async function stuckAt(id) {
  const { stdout } = await docker(['logs', id]);
  const m = /engine-worker: stuck at (\d+)/.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

/** Saves a container's whole `docker logs` output; returns {file, text}. */
async function saveLogs(id, label) {
  const { stdout, stderr } = await docker(['logs', id]);
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, `${label}-${id.slice(0, 12)}.log`);
  const text = `--- stdout\n${stdout}--- stderr\n${stderr}`;
  fs.writeFileSync(file, text);
  console.log(`# docker logs of the stuck ${label} container: ${file}`);
  return { file, text };
}

function assertStallLog(log) {
  if (EXPECT_STALL_LOG) assert.ok(log.text.includes(STALL_LOG), `${log.file} lacks "${STALL_LOG}"`);
  else if (!log.text.includes(STALL_LOG)) console.log(`# note: ${log.file} has no "${STALL_LOG}" block (strict with ENGINE_EXPECT_STALL_LOG=1)`);
  if (EXPECT_FRAME) assert.ok(log.text.includes(FRAME), `${log.file} does not name ${FRAME}`);
}

/** The failing `check` lines of a container's health log, which must say why. */
function assertHealthLogSaysWhy(container, label) {
  const failures = container.State.Health.Log.filter((l) => l.ExitCode !== 0).map((l) => l.Output.trim());
  const why = failures.filter((o) => /^stale: .* stalled since /.test(o));
  assert.ok(why.length > 0, `${label}: no "stale: ... stalled since" line in the health log:\n${failures.join('\n')}`);
  console.log(`# ${label} health log: ${why.at(-1)}`);
  if (EXPECT_FRAME) assert.ok(why.some((o) => o.includes(FRAME)), `${label}: the health log's check line does not name ${FRAME}:\n${why.join('\n')}`);
}

const measured = [];
function report(line) {
  measured.push(line);
  console.log(`# measured: ${line}`);
}

test.before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-engine-images-'));
  try {
    const t0 = performance.now();
    const root = path.join(dir, 'root');
    baseRoot(root);
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const imported = new Promise((resolve, reject) => {
      const child = execFile(DOCKER, ['import', '-', IMAGES.base], { timeout: 60000, killSignal: 'SIGKILL' }, (e, out, err) => (e ? reject(new Error(`docker import: ${err}`)) : resolve()));
      tar.stdout.pipe(child.stdin);
    });
    await imported;
    const ctx = path.join(dir, 'ctx');
    appDir(path.join(ctx, 'app'));
    for (const kind of ['check', 'shell', 'noinit']) {
      const dockerfile = path.join(dir, `Dockerfile.${kind}`);
      fs.writeFileSync(dockerfile, R[kind].dockerfile.join('\n') + '\n');
      console.log(`# ${IMAGES[kind]}:\n${R[kind].dockerfile.map((l) => `#   ${l}`).join('\n')}`);
      await docker(['build', '-q', '-t', IMAGES[kind], '-f', dockerfile, ctx], { timeout: 60000 });
    }
    // The addon that loads in the image is the committed prebuild.
    const loaded = await docker(['run', '--rm', '--network', 'none', '-e', 'NODE_OPTIONS=', IMAGES.check, 'node', '-p',
      "require('node-gyp-build').resolve('node_modules/celery-pulse-native')"]);
    assert.match(loaded.stdout.trim(), /\/prebuilds\/linux-x64\/celery-pulse-native\.glibc\.node$/);
    report(`images built in ${seconds(performance.now() - t0)} s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.after(async () => {
  await docker(['rmi', '-f', ...Object.values(IMAGES)], { allowFail: true, timeout: 60000 });
  if (measured.length) console.log(`# summary:\n${measured.map((l) => `#   ${l}`).join('\n')}`);
});

test('docker run: busy workers stay healthy, stuck ones turn unhealthy in time, and the health log says why', { timeout: PHASE_MS }, async (t) => {
  const runs = [
    { name: `${TAG}-busy-check`, image: IMAGES.check, hc: R.check, mode: 'busy' },
    { name: `${TAG}-stuck-check`, image: IMAGES.check, hc: R.check, mode: 'stuck' },
    { name: `${TAG}-busy-shell`, image: IMAGES.shell, hc: R.shell, mode: 'busy' },
    { name: `${TAG}-stuck-shell`, image: IMAGES.shell, hc: R.shell, mode: 'stuck' },
  ];
  const ev = events();
  t.after(async () => {
    ev.stop();
    await docker(['rm', '-f', ...runs.map((r) => r.name)], { allowFail: true, timeout: 60000 });
  });
  await sleep(200); // events is listening
  for (const r of runs) {
    const { stdout } = await docker(['run', '-d', '--name', r.name, '--network', 'none', '--cpus', '0.5',
      '-e', `ENGINE_WORKER=${r.mode}`, '-e', `ENGINE_STUCK_AFTER_MS=${STUCK_AFTER_MS}`, r.image]);
    r.id = stdout.trim();
  }
  const startMs = Date.now();
  const worst = Math.max(...runs.map((r) => r.hc.bound));
  const deadline = startMs + STUCK_AFTER_MS + (worst + SLACK_S) * 1000 + 10000;
  const unhealthyAt = (r) => ev.containers().find((e) => e.id === r.id && e.action === 'health_status: unhealthy')?.ms;
  // Watch until both stuck ones are unhealthy, then as long again as their
  // probes' retries take, so the busy ones are watched past that point.
  let allStuckAt;
  for (;;) {
    const stuck = runs.filter((r) => r.mode === 'stuck');
    if (allStuckAt === undefined && stuck.every(unhealthyAt)) allStuckAt = Date.now();
    if (allStuckAt !== undefined && Date.now() > allStuckAt + R.check.retries * R.check.interval * 1000) break;
    assert.ok(allStuckAt !== undefined || Date.now() < deadline, `not every stuck container turned unhealthy within ${seconds(deadline - startMs)} s: ${stuck.filter((r) => !unhealthyAt(r)).map((r) => r.name).join(', ')}`);
    await sleep(250);
  }
  const containers = await inspect(runs.map((r) => r.id));
  const windowS = seconds(Date.now() - startMs);
  for (const [i, r] of runs.entries()) {
    const c = containers[i];
    const mine = ev.containers().filter((e) => e.id === r.id).map((e) => e.action);
    assert.ok(c.State.Running, `${r.name} is not running: ${JSON.stringify(c.State)}`);
    assert.ok(mine.includes('health_status: healthy'), `${r.name} never turned healthy: ${mine.join(', ')}`);
    if (r.mode === 'busy') {
      assert.ok(!mine.includes('health_status: unhealthy'), `busy ${r.name} turned unhealthy within ${windowS} s: ${mine.join(', ')}`);
      assert.equal(c.State.Health.Status, 'healthy');
      const failed = c.State.Health.Log.filter((l) => l.ExitCode !== 0);
      assert.deepEqual(failed, [], `busy ${r.name} failed a probe`);
      r.probes = assertNoProbeFailed(ev, r.id, r.name, windowS);
      continue;
    }
    const stuck = await stuckAt(r.id);
    assert.ok(stuck, `${r.name} never logged that it got stuck`);
    const took = (unhealthyAt(r) - stuck) / 1000;
    const limit = r.hc.bound + SLACK_S;
    report(`docker run, ${r.hc.cli ? 'check' : 'shell'} probe: stuck -> unhealthy ${took.toFixed(1)} s (bound maxStall ${R.maxStall} + max-age ${r.hc.maxAge} + ${r.hc.retries} x ${r.hc.interval} = ${r.hc.bound} s, + ${SLACK_S} s slack)`);
    assert.ok(took <= limit, `${r.name}: stuck -> unhealthy took ${took.toFixed(1)} s, more than ${limit} s`);
    assert.ok(took >= R.maxStall, `${r.name}: unhealthy ${took.toFixed(1)} s after it got stuck, before maxStall (${R.maxStall} s) passed`);
    assert.equal(c.State.Health.Status, 'unhealthy');
    const log = await saveLogs(r.id, r.name.slice(TAG.length + 1));
    if (r.hc.cli) assertHealthLogSaysWhy(c, r.name);
    assertStallLog(log);
  }
  report(`docker run: busy check and shell containers healthy for the whole ${windowS} s window, ${runs.filter((r) => r.probes).map((r) => r.probes).join(' and ')} probes passed`);
});

// A process frozen whole (the cgroup freezer behind `docker pause`) is not a
// stuck one: thawed, it logs no stall and its record says "running". Needs the
// heartbeat to give the loop a fresh chance after a late wake-up.
test('docker pause: a healthy container frozen for 8 s and thawed logs no stall, and its record says running', { timeout: 120000 }, async (t) => {
  const name = `${TAG}-paused`;
  const file = R.env.CELERY_PULSE_HEALTHCHECK_FILE ?? '/tmp/celery_healthcheck';
  t.after(() => docker(['rm', '-f', name], { allowFail: true, timeout: 60000 }));
  await docker(['run', '-d', '--name', name, '--network', 'none', '--cpus', '0.5', '-e', 'ENGINE_WORKER=busy', IMAGES.check]);
  const healthy = async () => (await inspect([name]))[0].State.Health?.Status === 'healthy';
  for (const until = Date.now() + 60000; !(await healthy()); await sleep(250)) {
    assert.ok(Date.now() < until, `${name} never turned healthy`);
  }
  await docker(['pause', name]);
  await sleep(8000); // the freeze itself
  await docker(['unpause', name]);
  const interval = Number(R.env.CELERY_PULSE_HEARTBEAT_INTERVAL);
  // Beats resume: a record written after the thaw.
  const thawed = Date.now();
  let record;
  for (const until = Date.now() + 30000; ; await sleep(250)) {
    record = JSON.parse((await docker(['exec', name, 'cat', file])).stdout);
    if (Date.parse(record.updatedAt) > thawed || Date.now() - thawed > 3 * interval * 1000) break;
    assert.ok(Date.now() < until, 'no record after the thaw');
  }
  const { stdout, stderr } = await docker(['logs', name]);
  assert.doesNotMatch(stdout + stderr, new RegExp(STALL_LOG), 'the thawed container logged a stall');
  assert.equal(record.state, 'running', JSON.stringify(record));
  assert.equal(record.lastStall, undefined, 'the record holds a lastStall');
  assert.equal((await inspect([name]))[0].RestartCount, 0);
});

test('Kubernetes: the recipe\'s command ends a stuck worker at SIGTERM; node as PID 1 ignores it', { timeout: 60000 }, async (t) => {
  const k8s = readme.blocks().filter((b) => b.marker === 'kubernetes').map((b) => readme.kubernetesParts(b.body)).find((p) => p.commands.length > 0);
  assert.ok(k8s, 'the README Deployment has a container command');
  const command = k8s.commands[0];
  const init = /(^|\/)tini$/.test(command[0]) ? command.slice(0, command.indexOf('--') + 1) : [];
  assert.ok(init.length > 0, `the README Kubernetes command runs no init: ${JSON.stringify(command)}`);
  const env = { ...k8s.env };
  for (const name of ['CELERY_PULSE_HEARTBEAT_INTERVAL', 'CELERY_PULSE_MAX_STALL']) env[name] = scaleDuration(env[name]);
  const variants = [
    { name: `${TAG}-k8s-init`, argv: command, grace: 20 },
    { name: `${TAG}-k8s-noinit`, argv: command.slice(init.length), grace: 4 },
  ];
  t.after(() => docker(['rm', '-f', ...variants.map((v) => v.name)], { allowFail: true, timeout: 60000 }));
  for (const v of variants) {
    await docker(['run', '-d', '--name', v.name, '--network', 'none', '--cpus', '0.5', '--no-healthcheck',
      '-w', k8s.workingDir ?? '/app', '--entrypoint', v.argv[0],
      ...Object.entries({ ...env, ENGINE_WORKER: 'stuck', ENGINE_STUCK_AFTER_MS: '1000' }).flatMap(([k, val]) => ['-e', `${k}=${val}`]),
      IMAGES.check, ...v.argv.slice(1)]);
  }
  for (const v of variants) {
    const until = Date.now() + 20000;
    while (!(await stuckAt(v.name))) {
      assert.ok(Date.now() < until, `${v.name} never got stuck`);
      await sleep(200);
    }
  }
  for (const v of variants) {
    const t0 = performance.now();
    await docker(['stop', '-t', String(v.grace), v.name], { timeout: (v.grace + 20) * 1000 });
    v.ms = performance.now() - t0;
    v.exit = (await inspect([v.name]))[0].State.ExitCode;
  }
  const [withInit, without] = variants;
  report(`docker stop of a stuck worker: ${seconds(withInit.ms)} s with ${init.join(' ')} (exit ${withInit.exit}), ${seconds(without.ms)} s without an init (exit ${without.exit}, grace ${without.grace} s)`);
  assert.equal(withInit.exit, 143, 'with the init, node ends at SIGTERM (exit 128 + 15)');
  assert.ok(withInit.ms < 5000, `with the init, stop took ${seconds(withInit.ms)} s`);
  assert.equal(without.exit, 137, 'without an init, node as PID 1 outlives SIGTERM and is killed (exit 128 + 9)');
  assert.ok(without.ms >= (without.grace - 0.5) * 1000, `without an init, stop took only ${seconds(without.ms)} s`);
});

test('Swarm: the stuck task is shut down as unhealthy and replaced, the busy one never', { timeout: PHASE_MS }, async (t) => {
  const services = [
    { name: `${TAG}-busy-check`, image: IMAGES.check, hc: R.check, mode: 'busy' },
    { name: `${TAG}-stuck-check`, image: IMAGES.check, hc: R.check, mode: 'stuck', init: true },
    { name: `${TAG}-stuck-noinit`, image: IMAGES.noinit, hc: R.check, mode: 'stuck', init: false },
    { name: `${TAG}-busy-shell`, image: IMAGES.shell, hc: R.shell, mode: 'busy' },
    { name: `${TAG}-stuck-shell`, image: IMAGES.shell, hc: R.shell, mode: 'stuck', init: true },
  ];
  assert.ok(R.entrypoint && /tini/.test(R.entrypoint), `the README image's ENTRYPOINT is an init: ${R.entrypoint}`);
  await docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377', '--data-path-addr', '127.0.0.1']);
  const ev = events();
  t.after(async () => {
    ev.stop();
    await docker(['service', 'rm', ...services.map((s) => s.name)], { allowFail: true, timeout: 60000 });
    await docker(['swarm', 'leave', '--force'], { allowFail: true, timeout: 60000 });
    await docker(['network', 'rm', 'docker_gwbridge'], { allowFail: true });
  });
  await sleep(200);
  // Swarm's defaults: stop grace period 10 s, restart delay 5 s.
  const STOP_GRACE_S = 10;
  const RESTART_DELAY_S = 5;
  for (const s of services) {
    await docker(['service', 'create', '--detach', '--no-resolve-image', '--name', s.name, '--limit-cpu', '0.5',
      '--env', `ENGINE_WORKER=${s.mode}`, '--env', `ENGINE_STUCK_AFTER_MS=${STUCK_AFTER_MS}`, s.image]);
  }
  const startMs = Date.now();
  const tasks = async (s) => inspect((await docker(['service', 'ps', '-q', '--no-trunc', s.name])).stdout.split('\n').filter(Boolean));
  const worst = Math.max(...services.map((s) => s.hc.bound));
  const deadline = startMs + STUCK_AFTER_MS + (worst + SLACK_S + STOP_GRACE_S + RESTART_DELAY_S) * 1000 + 20000;
  const replaced = new Map();
  while (replaced.size < services.filter((s) => s.mode === 'stuck').length) {
    assert.ok(Date.now() < deadline, `Swarm did not replace every stuck task within ${seconds(deadline - startMs)} s: ${services.filter((s) => s.mode === 'stuck' && !replaced.has(s)).map((s) => s.name).join(', ')}`);
    for (const s of services.filter((x) => x.mode === 'stuck' && !replaced.has(x))) {
      const list = await tasks(s);
      const old = list.find((k) => /unhealthy container/.test(k.Status.Err ?? ''));
      const next = list.find((k) => k !== old && k.Status.State === 'running' && old && new Date(k.CreatedAt) > new Date(old.CreatedAt));
      if (old && next) replaced.set(s, { old, next });
    }
    for (const s of services.filter((x) => x.mode === 'busy')) {
      const list = await tasks(s);
      assert.equal(list.length, 1, `busy ${s.name} was replaced: ${list.map((k) => `${k.Status.State} ${k.Status.Err ?? ''}`).join('; ')}`);
    }
    await sleep(500);
  }
  const windowS = seconds(Date.now() - startMs);
  const all = ev.containers();
  for (const s of services) {
    const list = await tasks(s);
    if (s.mode === 'busy') {
      assert.equal(list.length, 1, `busy ${s.name} was replaced`);
      assert.equal(list[0].Status.State, 'running');
      const id = list[0].Status.ContainerStatus.ContainerID;
      const mine = all.filter((e) => e.id === id).map((e) => e.action);
      assert.ok(mine.includes('health_status: healthy'), `busy ${s.name} never turned healthy`);
      assert.ok(!mine.includes('health_status: unhealthy') && !mine.includes('die'), `busy ${s.name}: ${mine.join(', ')}`);
      s.probes = assertNoProbeFailed(ev, id, s.name, windowS);
      continue;
    }
    const { old, next } = replaced.get(s);
    assert.match(old.Status.Err, /unhealthy container/);
    assert.equal(old.Status.State, 'failed');
    const oldId = old.Status.ContainerStatus.ContainerID;
    const newId = next.Status.ContainerStatus.ContainerID;
    const at = (id, action) => all.find((e) => e.id === id && e.action === action)?.ms;
    const stuck = await stuckAt(oldId);
    assert.ok(stuck, `${s.name}: the replaced container never logged that it got stuck`);
    assert.ok(at(oldId, 'health_status: healthy') < stuck, `${s.name}: the replaced container was not healthy before it got stuck`);
    const unhealthy = at(oldId, 'health_status: unhealthy');
    const died = at(oldId, 'die');
    const started = at(newId, 'start');
    assert.ok(unhealthy && died && started, `${s.name}: events missing (unhealthy ${unhealthy}, die ${died}, start ${started})`);
    const toUnhealthy = (unhealthy - stuck) / 1000;
    const toDie = (died - unhealthy) / 1000;
    const toReplaced = (started - stuck) / 1000;
    report(`Swarm, ${s.hc.cli ? 'check' : 'shell'} probe, ${s.init ? 'with tini' : 'no init'}: stuck -> unhealthy ${toUnhealthy.toFixed(1)} s, -> killed ${toDie.toFixed(1)} s later, stuck -> replacement started ${toReplaced.toFixed(1)} s`);
    assert.ok(toUnhealthy <= s.hc.bound + SLACK_S, `${s.name}: stuck -> unhealthy took ${toUnhealthy.toFixed(1)} s`);
    if (s.init) assert.ok(toDie < 5, `${s.name}: with an init the stuck container took ${toDie.toFixed(1)} s to end after SIGTERM`);
    else assert.ok(toDie >= STOP_GRACE_S - 1, `${s.name}: without an init it ended ${toDie.toFixed(1)} s after SIGTERM, before the grace period`);
    assert.ok(toReplaced <= s.hc.bound + SLACK_S + (s.init ? 0 : STOP_GRACE_S) + RESTART_DELAY_S + 5, `${s.name}: stuck -> replaced took ${toReplaced.toFixed(1)} s`);
    const [container] = await inspect([oldId]);
    const log = await saveLogs(oldId, `swarm-${s.name.slice(TAG.length + 1)}`);
    if (s.hc.cli) assertHealthLogSaysWhy(container, s.name);
    assertStallLog(log);
  }
  report(`Swarm: busy check and shell services kept their one task for the whole ${windowS} s window, ${services.filter((s) => s.probes).map((s) => s.probes).join(' and ')} probes passed`);
});
