'use strict';
// systemd, really: PID 1 of a container (Debian bookworm's, built by
// test/supervisors/run.sh with debootstrap and cached), running the unit file
// of docs/operations.md (its `test: systemd` block, durations divided by
// SCALE: WatchdogSec=3) for preloaded workers side by side:
//   busy    never restarted over 30 s
//   stuck   StatusText names the stuck frame while it is stuck; the watchdog
//           kills it within maxStall + WatchdogSec + 1.5 s of getting stuck and
//           restarts it; the journal holds the stall block; the restarted
//           worker's record has `previous`
//   ready   Type=notify: active once the worker calls pulse.ready()
//   off     CELERY_PULSE_SYSTEMD=0: nothing sent, so the watchdog kills it
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { STALL_LOG, block, run, appDir, workerLines, sleep, until } = require('./common');

const DOCKER = process.env.ENGINE_DOCKER || '/usr/bin/docker';
const ROOTFS = process.env.SYSTEMD_ROOTFS;
const SCALE = 5;
const WATCH_MS = 30000;
const TAG = `pulse-systemd-${process.pid}`;

if (!process.env.DOCKER_HOST || !ROOTFS || !fs.existsSync(ROOTFS)) {
  test('systemd', { skip: 'no DOCKER_HOST or SYSTEMD_ROOTFS: run test/supervisors/run.sh, which starts a dockerd and builds the root file system' }, () => {});
  return;
}

const docker = (args, options = {}) => run(DOCKER, args, { timeout: 60000, ...options });

/** The documented unit for `mode`, durations divided by SCALE, with its own state directory. */
function unit(mode, extra = []) {
  const doc = block('systemd').body;
  const number = (key) => Number(new RegExp(`^${key}=(\\d+(?:\\.\\d+)?)$`, 'm').exec(doc)?.[1]);
  const envNumber = (key) => Number(new RegExp(`^Environment=${key}=(\\d+(?:\\.\\d+)?)$`, 'm').exec(doc)?.[1]);
  for (const [what, value] of [['WatchdogSec', number('WatchdogSec')], ['interval', envNumber('CELERY_PULSE_HEARTBEAT_INTERVAL')], ['maxStall', envNumber('CELERY_PULSE_MAX_STALL')]]) {
    assert.ok(value > 0, `the documented unit sets ${what}`);
  }
  assert.match(doc, /^NotifyAccess=main$/m);
  assert.match(doc, /^Restart=always$/m);
  assert.match(doc, /^Environment=NODE_OPTIONS="--require celery-pulse-native\/register"$/m);
  const text = doc
    .replace(/^(WatchdogSec)=(\S+)$/m, (_, k, v) => `${k}=${Number(v) / SCALE}`)
    .replace(/^(Environment=CELERY_PULSE_(?:HEARTBEAT_INTERVAL|MAX_STALL))=(\S+)$/gm, (_, k, v) => `${k}=${Number(v) / SCALE}`)
    .replace(/\/var\/lib\/worker\//g, `/var/lib/pulse-${mode}/`)
    .replace(/^StateDirectory=worker$/m, `StateDirectory=pulse-${mode}`)
    .replace(/^\[Service\]$/m, ['[Service]', `Environment=SUPERVISED_MODE=${mode}`, 'Environment=SUPERVISED_STUCK_AFTER_MS=4000', ...extra].join('\n'));
  return {
    text,
    watchdogS: number('WatchdogSec') / SCALE,
    maxStallS: envNumber('CELERY_PULSE_MAX_STALL') / SCALE,
    file: `/var/lib/pulse-${mode}/health`,
  };
}

/** systemctl show's properties of units: {unit: {Prop: value}}. */
async function show(name, units, props) {
  const { stdout } = await docker(['exec', name, 'systemctl', 'show', ...props.map((p) => `-p${p}`), ...units.map((u) => `${u}.service`)]);
  const blocks = stdout.trim().split(/\n\n/);
  return Object.fromEntries(units.map((u, i) => [u, Object.fromEntries(blocks[i].split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))]));
}

/** A unit's journal: [{ms, message}]. */
async function journal(name, unitName) {
  const { stdout } = await docker(['exec', name, 'journalctl', '-u', `${unitName}.service`, '-o', 'json', '--no-pager']);
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).map((e) => ({
    ms: Number(e.__REALTIME_TIMESTAMP) / 1000,
    message: Array.isArray(e.MESSAGE) ? Buffer.from(e.MESSAGE).toString() : String(e.MESSAGE),
  }));
}

test('systemd: the watchdog is fed while the loop answers, and kills and restarts a stuck worker; Type=notify; CELERY_PULSE_SYSTEMD=0', { timeout: 240000 }, async (t) => {
  const image = `${TAG}-image`;
  const name = `${TAG}-pid1`;
  const app = appDir(fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-systemd-app-')));
  const units = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-systemd-units-'));
  t.after(async () => {
    await docker(['rm', '-f', name], { allowFail: true });
    await docker(['rmi', '-f', image], { allowFail: true });
    fs.rmSync(app, { recursive: true, force: true });
    fs.rmSync(units, { recursive: true, force: true });
  });
  await docker(['import', '-c', 'ENTRYPOINT ["/lib/systemd/systemd"]', ROOTFS, image], { timeout: 120000 });
  await docker(['run', '-d', '-t', '--name', name, '--network', 'none', '-e', 'container=docker', '--stop-signal', 'SIGRTMIN+3',
    '--cgroupns=host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:ro', '--tmpfs', '/run', '--tmpfs', '/run/lock',
    '-v', `${fs.realpathSync(process.execPath)}:/usr/local/bin/node:ro`, '-v', `${app}:/app:ro`, image]);
  await until('systemd to be up', 60000, async () => {
    const { stdout } = await docker(['exec', name, 'systemctl', 'is-system-running'], { allowFail: true });
    return /^(running|degraded)$/m.test(stdout.trim());
  });

  const specs = {
    'pulse-busy': unit('busy'),
    'pulse-stuck': unit('stuck'),
    'pulse-ready': unit('ready', ['Type=notify', 'TimeoutStartSec=20']),
    'pulse-off': unit('idle', ['Environment=CELERY_PULSE_SYSTEMD=0']),
  };
  specs['pulse-off'].text = specs['pulse-off'].text.replace(/pulse-idle/g, 'pulse-off');
  for (const [u, spec] of Object.entries(specs)) {
    fs.writeFileSync(path.join(units, `${u}.service`), spec.text);
    await docker(['cp', path.join(units, `${u}.service`), `${name}:/etc/systemd/system/${u}.service`]);
  }
  await docker(['exec', name, 'systemctl', 'daemon-reload']);
  const startedAt = Date.now();
  await docker(['exec', name, 'systemctl', 'start', '--no-block', 'pulse-busy', 'pulse-stuck', 'pulse-off']);
  // Type=notify: `systemctl start` returns once the worker sent READY=1.
  await docker(['exec', name, 'systemctl', 'start', 'pulse-ready'], { timeout: 30000 });
  const ready = await show(name, ['pulse-ready'], ['ActiveState', 'StatusText']);
  assert.equal(ready['pulse-ready'].ActiveState, 'active');
  assert.match(ready['pulse-ready'].StatusText, /^running: beating /);

  // Watch: the stuck worker's StatusText while it is stuck, until it is
  // restarted and the busy one has run for WATCH_MS.
  const names = Object.keys(specs);
  let stalledText;
  let state;
  for (;;) {
    state = await show(name, names, ['NRestarts', 'StatusText', 'ActiveState']);
    const stuck = state['pulse-stuck'];
    if (stuck.NRestarts === '0' && stuck.StatusText.startsWith('stalled')) stalledText = stuck.StatusText;
    const done = Number(stuck.NRestarts) >= 1 && Number(state['pulse-off'].NRestarts) >= 1 && Date.now() - startedAt >= WATCH_MS;
    if (done) break;
    assert.ok(Date.now() - startedAt < WATCH_MS + 60000, `not restarted in time: ${JSON.stringify(state)}`);
    await sleep(200);
  }

  // busy: never restarted, still saying it runs.
  assert.equal(state['pulse-busy'].NRestarts, '0', 'the busy worker was restarted');
  assert.equal(state['pulse-busy'].ActiveState, 'active');
  assert.match(state['pulse-busy'].StatusText, /^running: beating \/var\/lib\/pulse-busy\/health$/);

  // stuck: said where, killed in time by the watchdog, its stall block in the journal, previous kept.
  const spec = specs['pulse-stuck'];
  assert.ok(stalledText, 'StatusText never said "stalled" while the worker was stuck');
  assert.match(stalledText, /^stalled since \S+, loop silent for \d+\.\d s; at crunchForever \(\/app\/worker\.js:\d+:\d+\)$/);
  const entries = await journal(name, 'pulse-stuck');
  const stuckLine = workerLines(entries.map((e) => e.message).join('\n')).find((l) => l.what === 'stuck');
  assert.ok(stuckLine, 'the stuck worker said when it got stuck');
  const timeout = entries.find((e) => /Watchdog timeout/.test(e.message));
  assert.ok(timeout, `no "Watchdog timeout" in the journal:\n${entries.map((e) => e.message).join('\n')}`);
  const killedMs = timeout.ms - stuckLine.at;
  const bound = (spec.maxStallS + spec.watchdogS + 1.5) * 1000;
  console.log(`# systemd: stuck -> watchdog timeout ${killedMs.toFixed(0)} ms (bound maxStall ${spec.maxStallS} + WatchdogSec ${spec.watchdogS} + 1.5 s = ${bound} ms)`);
  assert.ok(killedMs <= bound && killedMs >= spec.watchdogS * 1000 - 1000, `killed ${killedMs.toFixed(0)} ms after getting stuck`);
  assert.ok(entries.some((e) => e.message.includes(STALL_LOG)), 'the journal has the stall block');
  const record = JSON.parse((await docker(['exec', name, 'cat', spec.file])).stdout);
  assert.notEqual(record.pid, stuckLine.pid, 'the record is the restarted worker\'s');
  assert.equal(record.previous.state, 'stalled');
  assert.equal(record.previous.stack[0].function, 'crunchForever');

  // off: nothing sent, so the watchdog ended it.
  assert.equal(state['pulse-off'].StatusText, '', 'CELERY_PULSE_SYSTEMD=0 sent a STATUS= line');
  assert.ok((await journal(name, 'pulse-off')).some((e) => /Watchdog timeout/.test(e.message)));
});
