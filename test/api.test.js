'use strict';
// The public surface: CommonJS, ESM and types; status(); initCeleryPulse().
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');
const { PKG, pulse, STRATEGY, tmpDir, runChild, assertExit, withEnv } = require('./helpers');

test('require() and import both expose start and initCeleryPulse', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const cjs = runChild(`const m = require('celery-pulse-native');
    console.log(typeof m.start, typeof m.initCeleryPulse);`, { cwd: PKG });
  assertExit(cjs, 0);
  assert.equal(cjs.stdout.trim(), 'function function');
  const esm = spawnSync(process.execPath, ['--input-type=module', '-e', `
    import { start, initCeleryPulse } from 'celery-pulse-native';
    const p = start({ file: ${JSON.stringify(file)}, interval: 60, strategy: ${JSON.stringify(STRATEGY)} });
    console.log(typeof initCeleryPulse, p.status().running); p.stop();`], { cwd: PKG, encoding: 'utf8' });
  assertExit(esm, 0);
  assert.equal(esm.stdout.trim(), 'function true');
});

test('the published types compile for a TypeScript user', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16',
    '--target', 'es2022', '--types', 'node', path.join(__dirname, 'fixtures', 'consumer.ts')], { cwd: PKG, stdio: 'pipe' });
});

test('status() has every field of the design, with types', (t) => {
  const file = path.join(tmpDir(t), 'health');
  const p = pulse.start({ file, interval: 0.5, maxStall: 2, strategy: STRATEGY });
  const s = p.status();
  p.stop();
  assert.equal(s.running, true);
  assert.equal(s.strategy, STRATEGY);
  assert.equal(s.file, file);
  assert.equal(s.interval, 0.5);
  assert.equal(s.maxStall, 2);
  assert.equal(s.pid, process.pid);
  assert.equal(s.threadId, 0);
  assert.ok(s.startedAt instanceof Date);
  assert.equal(s.beats, 1);
  assert.ok(s.lastBeatAt instanceof Date && s.lastBeatAt >= s.startedAt);
  assert.equal(s.withheld, 0);
  assert.equal(s.stalled, false);
  assert.equal(typeof s.loopSilentMs, 'number');
  assert.ok(s.loopSilentMs >= 0 && s.loopSilentMs < 1000);
  assert.equal(s.errors, 0);
  assert.equal(s.lastError, null);
  assert.equal(p.status().running, false);
});

test('initCeleryPulse reads pulse_* settings from app.conf; overrides win', (t) => {
  const dir = tmpDir(t);
  const env = { CELERY_PULSE_HEARTBEAT_INTERVAL: '99', CELERY_PULSE_STRATEGY: STRATEGY };
  withEnv(env, () => {
    const app = { conf: { pulse_heartbeat_interval: 30, pulse_healthcheck_file: path.join(dir, 'a'), pulse_max_stall: 'inf' } };
    const a = pulse.initCeleryPulse(app);
    const sa = a.status();
    a.stop();
    assert.deepEqual([sa.file, sa.interval, sa.maxStall], [path.join(dir, 'a'), 30, Infinity]);

    const upper = { conf: { CELERY_PULSE_HEARTBEAT_INTERVAL: '12.5', CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'b') } };
    const b = pulse.initCeleryPulse(upper, { maxStall: 40 });
    const sb = b.status();
    b.stop();
    assert.deepEqual([sb.file, sb.interval, sb.maxStall], [path.join(dir, 'b'), 12.5, 40]);

    const c = pulse.initCeleryPulse({ conf: { pulse_healthcheck_file: path.join(dir, 'c') } }, { interval: 5 });
    const sc = c.status();
    c.stop();
    assert.equal(sc.interval, 5, 'override beats conf and env');
    const d = pulse.initCeleryPulse({ conf: { pulse_healthcheck_file: path.join(dir, 'd') } });
    const sd = d.status();
    d.stop();
    assert.equal(sd.interval, 99, 'env fills what conf leaves out');
  });
});

test('initCeleryPulse rejects a bad app or conf value with a coded error', () => {
  assert.throws(() => pulse.initCeleryPulse(null), { code: 'ERR_PULSE_INVALID_APP', name: 'TypeError' });
  assert.throws(() => pulse.initCeleryPulse({ conf: 5 }), { code: 'ERR_PULSE_INVALID_APP' });
  assert.throws(() => pulse.initCeleryPulse({ conf: { pulse_heartbeat_interval: 'soon' } }), {
    code: 'ERR_PULSE_INVALID_OPTION',
    message: /option "conf.pulse_heartbeat_interval" must be a number of seconds, got "soon"/,
  });
  assert.throws(() => pulse.initCeleryPulse({ conf: { pulse_max_stall: -1 } }), {
    code: 'ERR_PULSE_INVALID_OPTION',
    message: /conf.pulse_max_stall/,
  });
});
