'use strict';
// Bad input: every invalid option or env value throws a coded error naming
// the option or env var and the value, before any thread or file exists.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { pulse, STRATEGY, tmpDir, threadCount, withEnv } = require('./helpers');

const OPT = 'ERR_PULSE_INVALID_OPTION';
const ENV = 'ERR_PULSE_INVALID_ENV';

// [title, options, env, ErrorClass, code, message pattern]
const cases = [
  ['options not an object', 5, {}, TypeError, OPT, /options must be an object, got 5/],
  ['options null', null, {}, TypeError, OPT, /options must be an object, got null/],
  ['options an array', [1], {}, TypeError, OPT, /options must be an object/],
  ['unknown option (typo)', { intervall: 5 }, {}, TypeError, OPT, /unknown option "intervall"/],
  ['interval a string', { interval: '5' }, {}, TypeError, OPT, /option "interval" must be a number of seconds, got "5"/],
  ['interval NaN', { interval: NaN }, {}, RangeError, OPT, /option "interval" must be .* got NaN/],
  ['interval zero', { interval: 0 }, {}, RangeError, OPT, /option "interval" .* got 0/],
  ['interval negative', { interval: -1 }, {}, RangeError, OPT, /option "interval" .* got -1/],
  ['interval Infinity', { interval: Infinity }, {}, RangeError, OPT, /option "interval" .* got Infinity/],
  ['interval too small', { interval: 0.001 }, {}, RangeError, OPT, /option "interval" .* from 0.01 to 86400, got 0.001/],
  ['interval absurdly large', { interval: 1e9 }, {}, RangeError, OPT, /option "interval" .* got 1000000000/],
  ['interval a bigint', { interval: 5n }, {}, TypeError, OPT, /option "interval" .* got 5n/],
  ['maxStall negative', { maxStall: -2 }, {}, RangeError, OPT, /option "maxStall" .* or Infinity, got -2/],
  ['maxStall NaN', { maxStall: NaN }, {}, RangeError, OPT, /option "maxStall" .* got NaN/],
  ['maxStall -Infinity', { maxStall: -Infinity }, {}, RangeError, OPT, /option "maxStall" .* got -Infinity/],
  ['maxStall a string', { maxStall: 'inf' }, {}, TypeError, OPT, /option "maxStall" .* got "inf"/],
  ['file empty', { file: '' }, {}, TypeError, OPT, /option "file" must be a non-empty file path, got ""/],
  ['file blank', { file: '  ' }, {}, TypeError, OPT, /option "file" must be a non-empty file path/],
  ['file with NUL', { file: '/tmp/a\0b' }, {}, TypeError, OPT, /option "file" must be a file path without NUL bytes/],
  ['file a number', { file: 42 }, {}, TypeError, OPT, /option "file" must be a file path string, got 42/],
  ['file names a directory', { file: '/tmp/' }, {}, TypeError, OPT, /option "file" must be the path of a file, not of a directory, got "\/tmp\/"/],
  ['file is "."', { file: '.' }, {}, TypeError, OPT, /not of a directory, got "\."/],
  ['file name too long', { file: `/tmp/${'x'.repeat(300)}` }, {}, RangeError, OPT, /option "file" must be a file name of at most 200 bytes/],
  ['strategy unknown', { strategy: 'thread' }, {}, TypeError, OPT, /option "strategy" must be one of "auto", "native", "worker", got "thread"/],
  ['removeOnStop not boolean', { removeOnStop: 'yes' }, {}, TypeError, OPT, /option "removeOnStop" must be a boolean, got "yes"/],
  ['env interval not numeric', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: 'abc' }, TypeError, ENV, /env CELERY_PULSE_HEARTBEAT_INTERVAL must be a number of seconds, got "abc"/],
  ['env interval empty', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '' }, TypeError, ENV, /env CELERY_PULSE_HEARTBEAT_INTERVAL .* got ""/],
  ['env interval with unit', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '30s' }, TypeError, ENV, /got "30s"/],
  ['env interval hex', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '0x10' }, TypeError, ENV, /got "0x10"/],
  ['env interval zero', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '0' }, RangeError, ENV, /env CELERY_PULSE_HEARTBEAT_INTERVAL .* got "0"/],
  ['env interval negative', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '-5' }, TypeError, ENV, /got "-5"/],
  ['env interval inf', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: 'inf' }, TypeError, ENV, /CELERY_PULSE_HEARTBEAT_INTERVAL must be a number of seconds, got "inf"/],
  ['env interval huge', {}, { CELERY_PULSE_HEARTBEAT_INTERVAL: '1e12' }, RangeError, ENV, /got "1e12"/],
  ['env maxStall NaN', {}, { CELERY_PULSE_MAX_STALL: 'NaN' }, TypeError, ENV, /env CELERY_PULSE_MAX_STALL must be a number of seconds or "inf", got "NaN"/],
  ['env maxStall zero', {}, { CELERY_PULSE_MAX_STALL: '0.0' }, RangeError, ENV, /env CELERY_PULSE_MAX_STALL .* got "0.0"/],
  ['env file empty', {}, { CELERY_PULSE_HEALTHCHECK_FILE: '' }, TypeError, ENV, /env CELERY_PULSE_HEALTHCHECK_FILE must be a non-empty file path, got ""/],
  ['env file a directory', {}, { CELERY_PULSE_HEALTHCHECK_FILE: '/var/tmp/' }, TypeError, ENV, /env CELERY_PULSE_HEALTHCHECK_FILE must be the path of a file/],
  ['env strategy unknown', {}, { CELERY_PULSE_STRATEGY: 'fast' }, TypeError, ENV, /env CELERY_PULSE_STRATEGY must be one of .* got "fast"/],
  ['exitOnStall below maxStall', { maxStall: 5, exitOnStall: 2 }, {}, RangeError, OPT, /option "exitOnStall" must be a number of seconds of at least maxStall \(5\), got 2/],
  ['exitOnStall with the gate off', { maxStall: Infinity, exitOnStall: 60 }, {}, RangeError, OPT, /option "exitOnStall" .* at least maxStall \(Infinity\), got 60/],
  ['exitOnStall negative', { exitOnStall: -3 }, {}, RangeError, OPT, /option "exitOnStall" .* got -3/],
  ['exitOnStall NaN', { exitOnStall: NaN }, {}, RangeError, OPT, /option "exitOnStall" .* got NaN/],
  ['exitOnStall a string', { exitOnStall: '10' }, {}, TypeError, OPT, /option "exitOnStall" must be a number of seconds, got "10"/],
  ['exitOnStall true', { exitOnStall: true }, {}, TypeError, OPT, /option "exitOnStall" must be a number of seconds, got true/],
  ['env exitOnStall below maxStall', {}, { CELERY_PULSE_MAX_STALL: '30', CELERY_PULSE_EXIT_ON_STALL: '10' }, RangeError, ENV, /env CELERY_PULSE_EXIT_ON_STALL must be a number of seconds of at least maxStall \(30\), got "10"/],
  ['env exitOnStall not numeric', {}, { CELERY_PULSE_EXIT_ON_STALL: 'soon' }, TypeError, ENV, /env CELERY_PULSE_EXIT_ON_STALL must be a number of seconds, got "soon"/],
  ['env exitOnStall negative', {}, { CELERY_PULSE_EXIT_ON_STALL: '-60' }, TypeError, ENV, /env CELERY_PULSE_EXIT_ON_STALL .* got "-60"/],
  ['env exitOnStall NaN', {}, { CELERY_PULSE_EXIT_ON_STALL: 'NaN' }, TypeError, ENV, /env CELERY_PULSE_EXIT_ON_STALL .* got "NaN"/],
  ['systemd true', { systemd: true }, {}, TypeError, OPT, /option "systemd" must be "auto" or false, got true/],
  ['systemd "on"', { systemd: 'on' }, {}, TypeError, OPT, /option "systemd" must be "auto" or false, got "on"/],
  ['env systemd maybe', {}, { CELERY_PULSE_SYSTEMD: 'maybe' }, TypeError, ENV, /env CELERY_PULSE_SYSTEMD must be "auto" or "0", got "maybe"/],
];

for (const [title, options, env, Kind, code, pattern] of cases) {
  test(`bad input: ${title}`, (t) => {
    const dir = tmpDir(t);
    const threads = threadCount();
    // Env cases pass no explicit value for the same setting, so the env var is read.
    const opts = Object.keys(env).length > 0 ? { strategy: STRATEGY, file: path.join(dir, 'f'), ...options } : options;
    if ('CELERY_PULSE_HEALTHCHECK_FILE' in env) delete opts.file;
    if ('CELERY_PULSE_STRATEGY' in env) delete opts.strategy;
    withEnv(env, () =>
      assert.throws(() => pulse.start(opts), (error) => {
        assert.ok(error instanceof Kind, `${error.name}: ${error.message}`);
        assert.equal(error.code, code);
        assert.match(error.message, pattern);
        assert.match(error.message, /^celery-pulse-native: /);
        return true;
      }),
    );
    assert.equal(threadCount(), threads, 'no thread started');
    assert.deepEqual(fs.readdirSync(dir), [], 'no file created');
  });
}

test('valid env values are used: decimals, spaces, inf', (t) => {
  const file = path.join(tmpDir(t), 'f');
  const env = {
    CELERY_PULSE_HEALTHCHECK_FILE: file,
    CELERY_PULSE_HEARTBEAT_INTERVAL: ' 2.5 ',
    CELERY_PULSE_MAX_STALL: 'inf',
    CELERY_PULSE_STRATEGY: STRATEGY,
  };
  const s = withEnv(env, () => {
    const p = pulse.start();
    p.stop();
    return p.status();
  });
  assert.equal(s.file, file);
  assert.equal(s.interval, 2.5);
  assert.equal(s.maxStall, Infinity);
  assert.equal(s.strategy, STRATEGY);
});

test('precedence: option > env > default; maxStall defaults to interval', (t) => {
  const dir = tmpDir(t);
  const env = {
    CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'from-env'),
    CELERY_PULSE_HEARTBEAT_INTERVAL: '7',
    CELERY_PULSE_MAX_STALL: undefined,
  };
  withEnv(env, () => {
    const a = pulse.start({ strategy: STRATEGY, interval: 3 });
    const sa = a.status();
    a.stop();
    assert.equal(sa.file, path.join(dir, 'from-env'));
    assert.equal(sa.interval, 3);
    assert.equal(sa.maxStall, 3);
    const b = pulse.start({ strategy: STRATEGY, file: path.join(dir, 'explicit') });
    const sb = b.status();
    b.stop();
    assert.equal(sb.file, path.join(dir, 'explicit'));
    assert.equal(sb.interval, 7);
    assert.equal(sb.maxStall, 7);
  });
});

test('defaults: /tmp/celery_healthcheck, 60 s, maxStall = interval, no health check, stalls logged, no exitOnStall, systemd auto, native stacks taken', () => {
  const { resolveOptions } = require('../dist/contract/options');
  assert.deepEqual(resolveOptions({}, {}), {
    file: '/tmp/celery_healthcheck',
    interval: 60,
    maxStall: 60,
    strategy: 'auto',
    removeOnStop: false,
    healthCheck: undefined,
    healthCheckTimeout: 5,
    logStalls: true,
    exitOnStall: 0,
    systemd: true,
    listen: null,
    nativeStack: true,
  });
});

test('relative paths resolve against the cwd at start', (t) => {
  const dir = tmpDir(t);
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const p = pulse.start({ strategy: STRATEGY, file: 'sub/health', interval: 60 });
    p.stop();
    assert.equal(p.file, path.join(dir, 'sub', 'health'));
    assert.ok(fs.existsSync(path.join(dir, 'sub', 'health')));
  } finally {
    process.chdir(cwd);
  }
});
