'use strict';
// `check` over several files: --all (the default) and --any, globs and
// templated paths, and "gone" for a file whose process no longer runs here.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { tmpDir, assertExit } = require('./helpers');
const { cli, cleanEnv } = require('./sandbox');

/** A pid that existed a moment ago and no longer does. */
function deadPid() {
  const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  return Number(child.stdout.trim());
}

/** Writes a record file whose mtime is `ageSec` old. */
function recordFile(dir, name, { ageSec = 0, pid = process.pid, state = 'running', hostname = os.hostname(), ...extra } = {}) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${JSON.stringify({ state, message: state === 'running' ? 'started' : state, pid, hostname, threadId: 0, ...extra })}\n`);
  const t = Date.now() / 1000 - ageSec;
  fs.utimesSync(file, t, t);
  return file;
}

test('--all (the default for several files) names the stale ones; --any passes with one fresh', async (t) => {
  const dir = tmpDir(t);
  const a = recordFile(dir, 'w-1');
  const b = recordFile(dir, 'w-2', { ageSec: 60 });
  const c = recordFile(dir, 'w-3');

  const all = await cli(['check', '--max-age', '10', a, b, c]);
  assertExit(all, 1);
  const lines = all.stdout.trim().split('\n');
  assert.equal(lines.length, 4, all.stdout);
  assert.match(lines[0], /^fresh: .*w-1 age/);
  assert.match(lines[1], /^stale: .*w-2 age 60\.\d s > max-age 10\.0 s: the record says running, but no beat/);
  assert.equal(lines[3], `stale: 1 of 3 files: ${b} (--all)`);

  assertExit(await cli(['check', '--max-age', '10', '--file', a, '--file', c]), 0);
  const any = await cli(['check', '--any', '--max-age', '10', a, b]);
  assertExit(any, 0);
  assert.match(any.stdout, new RegExp(`^fresh: 1 of 2 files \\(--any\\): ${a}$`, 'm'));
  const none = await cli(['check', '--any', '--max-age', '10', b, path.join(dir, 'missing')]);
  assertExit(none, 1);
  assert.match(none.stdout, /^stale: none of the 2 files is fresh \(--any\)$/m);
  // --all on one file is a list of one; a missing file listed by name fails it.
  assertExit(await cli(['check', '--all', '--max-age', '10', a]), 0);
  assertExit(await cli(['check', '--max-age', '10', a, path.join(dir, 'missing')]), 1);
});

test('globs are expanded by the command (file name only, no dot files); one matching nothing fails', async (t) => {
  const dir = tmpDir(t);
  recordFile(dir, 'app-1');
  recordFile(dir, 'app-2');
  recordFile(dir, '.app-3.tmp', { ageSec: 600 }); // a record being written
  recordFile(dir, 'other', { ageSec: 600 });
  const result = await cli(['check', '--max-age', '10', path.join(dir, 'app-*')]);
  assertExit(result, 0);
  assert.match(result.stdout, /^fresh: all 2 files \(--all\)$/m);
  assertExit(await cli(['check', '--max-age', '10', path.join(dir, 'app-?')]), 0);
  assertExit(await cli(['check', '--max-age', '10', path.join(dir, '*')]), 1); // "other" is stale

  const empty = await cli(['check', path.join(dir, 'nothing-*')]);
  assertExit(empty, 1);
  assert.equal(empty.stdout, `missing: no file matches ${path.join(dir, 'nothing-*')}\n`);
  const json = await cli(['check', '--json', path.join(dir, 'nothing-*')]);
  assertExit(json, 1);
  assert.deepEqual(JSON.parse(json.stdout), { ok: false, mode: 'all', fresh: [], stale: [], gone: [], summary: `missing: no file matches ${path.join(dir, 'nothing-*')}`, files: [] });
});

test('a templated CELERY_PULSE_HEALTHCHECK_FILE stands for every file its pulses write', async (t) => {
  const dir = tmpDir(t);
  recordFile(dir, 'health-1');
  recordFile(dir, 'health-2', { ageSec: 600 });
  const env = cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'health-{workerId}'), CELERY_PULSE_HEARTBEAT_INTERVAL: '5' });
  const all = await cli(['check'], { env });
  assertExit(all, 1);
  assert.match(all.stdout, new RegExp(`^stale: 1 of 2 files: ${path.join(dir, 'health-2')} \\(--all\\)$`, 'm'));
  // A supervisor's stable slot is known to the probe too: only that file.
  const slot = await cli(['check'], { env: { ...env, CELERY_PULSE_WORKER_ID: '1' } });
  assertExit(slot, 0);
  assert.match(slot.stdout, new RegExp(`^fresh: ${path.join(dir, 'health-1')} age`));
  assert.equal(slot.stdout.trim().split('\n').length, 1, 'a single-file verdict');
  // {hostname} is this host's; {pid} matches any.
  recordFile(dir, `h-${os.hostname()}-77`);
  const host = await cli(['check', path.join(dir, 'h-{hostname}-{pid}')], { env });
  assertExit(host, 0);
  assert.match(host.stdout, /^fresh: all 1 files \(--all\)$/m);
  // Bad templates are usage errors, as start() would reject them.
  const bad = await cli(['check', path.join(dir, 'h-{worker}')], { env });
  assertExit(bad, 2);
  assert.match(bad.stderr, /unknown placeholder \{worker\}.*\(ERR_PULSE_INVALID_OPTION\)/);
});

test('a file that is not fresh and whose pid no longer runs here is gone; --all leaves it out', async (t) => {
  const dir = tmpDir(t);
  const pid = deadPid();
  const live = recordFile(dir, 'w-1');
  const crashed = recordFile(dir, 'w-2', { ageSec: 60, pid });

  const single = await cli(['check', '--max-age', '10', crashed]);
  assertExit(single, 1);
  assert.equal(single.stdout, `gone: ${crashed} age ${single.stdout.match(/age (\S+)/)[1]} s > max-age 10.0 s: the record says running, but its process is gone: it died without stopping its pulse (pid ${pid}, no longer running)\n`);
  const json = JSON.parse((await cli(['check', '--json', '--max-age', '10', crashed])).stdout);
  assert.equal(json.state, 'gone');
  assert.equal(json.record.pid, pid);

  const all = await cli(['check', '--max-age', '10', path.join(dir, 'w-*')]);
  assertExit(all, 0);
  assert.match(all.stdout, new RegExp(`^gone: ${crashed} age`, 'm'));
  assert.match(all.stdout, new RegExp(`^fresh: 1 of 2 files \\(--all; 1 gone, left out: ${crashed}\\)$`, 'm'));
  // Gone is never fresh: --any needs a live one; --all fails when all are gone.
  fs.rmSync(live);
  const allGone = await cli(['check', '--max-age', '10', path.join(dir, 'w-*')]);
  assertExit(allGone, 1);
  assert.match(allGone.stdout, /^gone: every one of the 1 files is gone \(--all\)/m);
  assertExit(await cli(['check', '--any', '--max-age', '10', path.join(dir, 'w-*')]), 1);
});

test('gone needs proof: a fresh file, another host, or a live pid stays fresh or stale', async (t) => {
  const dir = tmpDir(t);
  const pid = deadPid();
  // Fresh by its mtime: the mtime decides, whoever wrote it.
  const fresh = await cli(['check', '--max-age', '10', recordFile(dir, 'a', { pid })]);
  assertExit(fresh, 0);
  assert.match(fresh.stdout, /^fresh: .*no longer running/);
  // Written on another host: its pid means nothing here.
  const other = await cli(['check', '--max-age', '10', recordFile(dir, 'b', { pid, ageSec: 60, hostname: 'elsewhere.example' })]);
  assertExit(other, 1);
  assert.match(other.stdout, /^stale: .*\(pid \d+ on elsewhere\.example\)$/m);
  // Its process lives (frozen, or cannot write): stale, not gone.
  const frozen = await cli(['check', '--max-age', '10', recordFile(dir, 'c', { pid: process.pid, ageSec: 60 })]);
  assertExit(frozen, 1);
  assert.match(frozen.stdout, /^stale: .*killed or frozen, or cannot write the file \(pid \d+\)$/m);
});

test('an unhealthy record is explained by its failing check', async (t) => {
  const dir = tmpDir(t);
  const message = 'health check "redisReady" failing since 2026-01-02T03:04:05.678Z: returned false; beats withheld';
  const file = recordFile(dir, 'h', { state: 'unhealthy', ageSec: 3, message, updatedAt: new Date().toISOString() });
  const soon = await cli(['check', '--max-age', '10', file]);
  assertExit(soon, 0);
  assert.match(soon.stdout, /: health check "redisReady" failing since \S+: returned false; beats withheld \(as of [\d.]+ s ago\); the file goes stale in \d\.\d s \(pid \d+\)$/m);
  const t0 = Date.now() / 1000 - 30;
  fs.utimesSync(file, t0, t0);
  const stale = await cli(['check', '--json', '--max-age', '10', file]);
  assertExit(stale, 1);
  assert.equal(JSON.parse(stale.stdout).state, 'unhealthy');
});

test('status over several files shows each record, then the verdict line', async (t) => {
  const dir = tmpDir(t);
  recordFile(dir, 'w-1');
  recordFile(dir, 'w-2', { ageSec: 60 });
  const result = await cli(['status', '--max-age', '10', path.join(dir, 'w-*')]);
  assertExit(result, 1);
  assert.equal(result.stdout.match(/^file +/gm).length, 2);
  assert.match(result.stdout, /\n\nstale: 1 of 2 files: .*w-2 \(--all\)\n$/);
});

test('a record replaced (renamed over) while the probe reads it is read again, never taken for no record', async (t) => {
  const dir = tmpDir(t);
  const file = recordFile(dir, 'health');
  const { probe } = require('../dist/cli/probe');
  const { runChildAsync } = require('./helpers');
  // Another process replaces the record by rename thousands of times a
  // second, as a stalled pulse does at every deadline.
  const writer = runChildAsync(`
    const fs = require('node:fs');
    const file = ${JSON.stringify(file)};
    const end = Date.now() + 1500;
    for (let i = 0; Date.now() < end; i++) {
      fs.writeFileSync(file + '.tmp', JSON.stringify({ state: 'stalled', pid: process.pid, n: i }) + '\\n');
      fs.renameSync(file + '.tmp', file);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0.2); // a breath between records
    }`);
  let done = false;
  writer.then(() => (done = true));
  const states = new Map();
  let probes = 0;
  while (!done) {
    for (let i = 0; i < 200; i++, probes++) {
      const { state } = probe(file, 60000);
      states.set(state, (states.get(state) ?? 0) + 1);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  assertExit(await writer, 0);
  assert.ok(probes > 1000, `only ${probes} probes`);
  assert.equal(states.get('no-record') ?? 0, 0, `probe states: ${JSON.stringify([...states])}`);
});
