'use strict';
// The `celery-pulse-native` command: verdicts, exit codes, usage errors, the
// same env handling as start(), links and odd files, and what it loads.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, tmpDir, runChild, assertExit, publicPackageCopy } = require('./helpers');
const { BIN, cli, cleanEnv } = require('./sandbox');

const USAGE_LINE = 'usage: celery-pulse-native check [--file F]... [FILE|GLOB]... [--all|--any] [--max-age S] [--json]';

/** Sets a file's mtime `seconds` before now (negative: in the future). */
function age(file, seconds) {
  const t = Date.now() / 1000 - seconds;
  fs.utimesSync(file, t, t);
}

/** A file holding a record written by a real pulse that was then stopped. */
function stoppedRecordFile(t) {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 5, strategy: STRATEGY });`);
  assertExit(result, 0);
  return file;
}

test('a missing file exits 1 and says so; --json too', async (t) => {
  const file = path.join(tmpDir(t), 'nothing-here');
  const line = await cli(['check', '--file', file]);
  assertExit(line, 1);
  assert.match(line.stdout, /^missing: .*nothing-here: no such file/);
  assert.equal(line.stderr, '');

  const json = await cli(['check', '--file', file, '--json']);
  assertExit(json, 1);
  const verdict = JSON.parse(json.stdout);
  assert.equal(verdict.ok, false);
  assert.equal(verdict.state, 'missing');
  assert.equal(verdict.ageMs, null);
  assert.equal(verdict.file, file);
  assert.equal(verdict.record, null);

  const parentIsFile = path.join(tmpDir(t), 'plain');
  fs.writeFileSync(parentIsFile, '');
  assertExit(await cli(['check', '--file', path.join(parentIsFile, 'health')]), 1);
});

test('bad arguments exit 2 with a usage line on stderr and nothing on stdout', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  fs.writeFileSync(file, '');
  const cases = [
    [],
    ['probe'],
    ['check', '--bogus'],
    ['check', '-f', file],
    ['check', '--file'],
    ['check', '--max-age'],
    ['check', '--file', file, '--max-age', 'soon'],
    ['check', '--file', file, '--max-age', '0'],
    ['check', '--file', file, '--max-age', '-5'],
    ['check', '--file', file, '--max-age', '1e9'],
    ['check', '--file', file, '--max-age=0x10'],
    ['check', '--file', ''],
    ['check', '--file', `${file}/`],
    ['check', '--file', file, '--max-age', '5', '--max-age', '5'],
    ['check', '--json=yes'],
    ['check', '--all=yes'],
    ['check', '--all', '--any', file],
    ['check', path.join(path.dirname(file), '*', 'health')],
    ['check', path.join(path.dirname(file), 'h-{nope}')],
    ['check', `${file}-{pid`],
    ['status', '--json'],
  ];
  for (const args of cases) {
    const result = await cli(args);
    assert.equal(result.status, 2, `${JSON.stringify(args)} exited ${result.status}: ${result.stdout}${result.stderr}`);
    assert.ok(result.stderr.includes(USAGE_LINE), `${JSON.stringify(args)}: no usage line in ${result.stderr}`);
    assert.equal(result.stdout, '', JSON.stringify(args));
  }
  const coded = await cli(['check', '--file', file, '--max-age', 'soon']);
  assert.match(coded.stderr, /option "--max-age" must be a number of seconds, got "soon" \(ERR_PULSE_INVALID_OPTION\)/);

  const help = await cli(['--help']);
  assertExit(help, 0);
  assert.ok(help.stdout.startsWith(USAGE_LINE));
});

test('defaults come from the library env vars, validated with the same coded errors', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  fs.writeFileSync(file, '');
  age(file, 15);
  // max-age = 2 x interval
  assertExit(await cli(['check'], { env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '10' }) }), 0);
  const stale = await cli(['check'], { env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file, CELERY_PULSE_HEARTBEAT_INTERVAL: '5' }) });
  assertExit(stale, 1);
  assert.match(stale.stdout, /^stale: .*health age 15\.\d s > max-age 10\.0 s/);
  // the default interval is 60 s: max-age 120 s
  const json = await cli(['check', '--json'], { env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file }) });
  assertExit(json, 0);
  assert.equal(JSON.parse(json.stdout).maxAgeMs, 120000);
  // --max-age and --file win over the env
  assertExit(await cli(['check', '--max-age', '10'], { env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: file }) }), 1);
  assertExit(await cli(['check', '--file', file], { env: cleanEnv({ CELERY_PULSE_HEALTHCHECK_FILE: path.join(dir, 'other') }) }), 0);
  // a relative --file resolves against the cwd
  assertExit(await cli(['check', '--file', 'health'], { cwd: dir }), 0);

  for (const [name, value] of [
    ['CELERY_PULSE_HEARTBEAT_INTERVAL', 'soon'],
    ['CELERY_PULSE_HEARTBEAT_INTERVAL', '0'],
    ['CELERY_PULSE_HEALTHCHECK_FILE', ''],
    ['CELERY_PULSE_MAX_STALL', 'NaN'],
    ['CELERY_PULSE_STRATEGY', 'thread'],
  ]) {
    const result = await cli(['check', '--file', file], { env: cleanEnv({ [name]: value }) });
    assert.equal(result.status, 2, `${name}=${value}: ${result.stdout}${result.stderr}`);
    assert.match(result.stderr, new RegExp(`env ${name} must be .*\\(ERR_PULSE_INVALID_ENV\\)`));
    assert.equal(result.stdout, '');
  }
});

test('a symlink at the path is reported, never followed; other non-regular files fail', async (t) => {
  const dir = tmpDir(t);
  const target = stoppedRecordFile(t);
  age(target, -1); // fresh, so only the link can make the verdict fail
  const link = path.join(dir, 'link');
  fs.symlinkSync(target, link);
  const viaLink = await cli(['check', '--file', link, '--json']);
  assertExit(viaLink, 1);
  const verdict = JSON.parse(viaLink.stdout);
  assert.equal(verdict.state, 'symlink');
  assert.equal(verdict.record, null, 'the target was read through the link');
  assert.match((await cli(['check', '--file', link])).stdout, /^unusable: .*link: the path is a symbolic link/);

  const sub = path.join(dir, 'sub');
  fs.mkdirSync(sub);
  const asDir = await cli(['check', '--file', sub]);
  assertExit(asDir, 1);
  assert.match(asDir.stdout, /is a directory, not a regular file/);

  const fifo = path.join(dir, 'fifo');
  const mk = spawnSync('mkfifo', [fifo]);
  if (mk.status === 0) {
    const asFifo = await cli(['check', '--file', fifo], { timeout: 10000 });
    assertExit(asFifo, 1);
    assert.match(asFifo.stdout, /is a FIFO/);
  }
});

test('the line names the file, its age, the threshold and what the record says', async (t) => {
  const file = stoppedRecordFile(t);
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));

  age(file, 30);
  const stopped = await cli(['check', '--file', file, '--max-age', '20']);
  assertExit(stopped, 1);
  // Its process no longer runs on this host: gone, rather than stale.
  assert.match(stopped.stdout, new RegExp(`^gone: ${file} age 30\\.\\d s > max-age 20\\.0 s: the pulse was stopped at ${record.updatedAt} \\(pid ${record.pid}, no longer running\\)\\n$`));

  // A record that says running with an old mtime: killed or frozen.
  const running = { ...record, state: 'running', message: 'started', pid: process.pid };
  fs.writeFileSync(file, JSON.stringify(running));
  age(file, 300);
  const killed = await cli(['check', '--file', file, '--max-age', '20']);
  assertExit(killed, 1);
  assert.match(killed.stdout, /age 300 s \(5\.0 min\) > max-age 20\.0 s: the record says running, but no beat for 300 s \(5\.0 min\): the process was killed or frozen/);

  // A stalled record still inside the threshold passes and says when it goes stale.
  const stalled = {
    ...record,
    state: 'stalled',
    message: 'stalled',
    stalledSince: '2026-01-02T03:04:05.678Z',
    loopSilentMs: 2500,
    updatedAt: new Date().toISOString(),
  };
  fs.writeFileSync(file, JSON.stringify(stalled));
  age(file, 5);
  const soon = await cli(['check', '--file', file, '--max-age', '20']);
  assertExit(soon, 0);
  assert.match(soon.stdout, /^fresh: .* age 5\.\d s <= max-age 20\.0 s: stalled since 2026-01-02T03:04:05\.678Z, event loop silent for 2\.5 s as of [\d.]+ s ago; beats withheld, the file goes stale in 1\d\.\d s/);

  // A file touched by hand, with no record: the mtime decides.
  fs.writeFileSync(file, '');
  const bare = await cli(['check', '--file', file, '--json']);
  assertExit(bare, 0);
  assert.equal(JSON.parse(bare.stdout).state, 'no-record');
  // An mtime in the future counts as fresh, as in the shell probe.
  age(file, -60);
  const future = await cli(['check', '--file', file]);
  assertExit(future, 0);
  assert.match(future.stdout, /mtime in the future/);
});

test('a record the probe may not read: the mtime alone decides, and the line says why', { skip: process.getuid?.() !== 0 && 'needs root to run as another user' }, (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  fs.writeFileSync(file, '{"state":"running"}\n', { mode: 0o600 });
  const copy = publicPackageCopy(t);
  const main = `process.exitCode = require(${JSON.stringify(path.join(copy, 'dist', 'cli', 'cli.js'))}).main(['check', '--file', ${JSON.stringify(file)}]);`;
  const result = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', env: cleanEnv(), uid: 65534, gid: 65534 });
  assertExit(result, 0);
  assert.match(result.stdout, /^fresh: .*: the record cannot be read \(EACCES\); the mtime alone decides\n$/);
});

test('--json prints one object with the verdict and the parsed record', async (t) => {
  const file = stoppedRecordFile(t);
  age(file, 3);
  const result = await cli(['check', '--file', file, '--max-age', '60', '--json']);
  assertExit(result, 0);
  assert.equal(result.stdout.trim().split('\n').length, 1);
  const verdict = JSON.parse(result.stdout);
  assert.deepEqual(Object.keys(verdict).sort(), ['ageMs', 'file', 'maxAgeMs', 'mtime', 'ok', 'reason', 'record', 'state'].sort());
  assert.equal(verdict.ok, true);
  assert.equal(verdict.maxAgeMs, 60000);
  assert.ok(verdict.ageMs >= 2900 && verdict.ageMs < 30000, `ageMs ${verdict.ageMs}`);
  assert.equal(verdict.state, 'stopped');
  assert.equal(verdict.record.file, file);
  assert.equal(verdict.mtime, fs.statSync(file).mtime.toISOString());
});

test('status shows the record and its age for a person, with check\'s exit status', async (t) => {
  const file = stoppedRecordFile(t);
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));
  age(file, 2);
  const fresh = await cli(['status', '--file', file, '--max-age', '60']);
  assertExit(fresh, 0);
  assert.match(fresh.stdout, /^file +.*health\n/);
  assert.match(fresh.stdout, /\nverdict +fresh, age 2\.\d s <= max-age 60\.0 s\n/);
  assert.match(fresh.stdout, new RegExp(`\\nstate +stopped: stopped at ${record.updatedAt}\\n`));
  assert.match(fresh.stdout, new RegExp(`\\nprocess +pid ${record.pid} on ${record.hostname}, thread 0, strategy \\w+\\n`));
  assert.match(fresh.stdout, /\nsettings +interval 5 s, maxStall 5 s\n/);
  assertExit(await cli(['status', '--file', file, '--max-age', '1']), 1);
  const missing = await cli(['status', '--file', path.join(path.dirname(file), 'none')]);
  assertExit(missing, 1);
  assert.match(missing.stdout, /\nverdict +missing\n/);
});

test('the command loads neither the addon nor the library index', (t) => {
  // Lists every module loaded and every shared object mapped, as the CLI exits.
  const hook = path.join(tmpDir(t), 'hook.js');
  fs.writeFileSync(hook, `
    process.on('exit', () => {
      const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
      process.stderr.write(JSON.stringify({
        modules: Object.keys(require.cache).filter((m) => m !== __filename),
        addons: maps.split('\\n').filter((l) => l.endsWith('.node')),
      }));
    });`);
  const result = spawnSync(process.execPath, ['--require', hook, BIN, 'check', '--file', '/nonexistent/health'], {
    encoding: 'utf8',
    env: cleanEnv(),
  });
  assert.equal(result.status, 1, result.stderr);
  const seen = JSON.parse(result.stderr);
  const ours = seen.modules.map((m) => path.relative(PKG, m)).sort();
  assert.deepEqual(ours, ['bin/celery-pulse-native.js', 'dist/cli/cli.js', 'dist/cli/probe.js', 'dist/contract/errors.js', 'dist/contract/options.js', 'dist/contract/template.js', 'dist/diagnosis/stall-text.js']);
  assert.deepEqual(seen.addons, []);
});
