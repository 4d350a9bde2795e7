'use strict';
// The better-sqlite3 cache (test/sqlite.js) is shared by every suite run on
// the machine: its installs take turns under a lock, and a lock left by a
// process that died is taken over.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { STRATEGY, tmpDir } = require('./helpers');

const SKIP = STRATEGY === 'native' ? false : 'test tooling, not a strategy: runs in the native pass';
const SQLITE = JSON.stringify(path.join(__dirname, 'sqlite.js'));

/** A child that holds the lock for holdMs, writing "in" and "out" lines to log. */
function holder(cache, log, holdMs) {
  const source = `const fs = require('node:fs');
    require(${SQLITE}).withInstallLock(() => {
      fs.appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${holdMs});
      fs.appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
    });`;
  const child = spawn(process.execPath, ['-e', source], { env: { ...process.env, PULSE_TEST_SQLITE_DIR: cache }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

test('three processes installing at once take turns: no two hold the lock together', { skip: SKIP, timeout: 60000 }, async (t) => {
  const dir = tmpDir(t);
  const log = path.join(dir, 'log');
  const results = await Promise.all([1, 2, 3].map(() => holder(path.join(dir, 'cache'), log, 300)));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.length, 6, lines.join('\n'));
  for (let i = 0; i < lines.length; i += 2) {
    const [enter, leave] = [lines[i].split(' '), lines[i + 1].split(' ')];
    assert.deepEqual([enter[0], leave[0], leave[1]], ['in', 'out', enter[1]], lines.join('\n'));
  }
  assert.equal(new Set(lines.map((l) => l.split(' ')[1])).size, 3);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cache')), [], 'the lock is gone after the last one');
});

test('a lock whose holder died is taken over at once', { skip: SKIP, timeout: 60000 }, async (t) => {
  const dir = tmpDir(t);
  const cache = path.join(dir, 'cache');
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const pid = Number(dead.stdout);
  assert.ok(pid > 0);
  const lock = path.join(cache, `abi${process.versions.modules}-${process.arch}.lock`);
  fs.mkdirSync(lock, { recursive: true });
  fs.writeFileSync(path.join(lock, 'pid'), String(pid));
  const log = path.join(dir, 'log');
  const started = Date.now();
  const r = await holder(cache, log, 0);
  assert.equal(r.code, 0, r.stderr);
  assert.match(fs.readFileSync(log, 'utf8'), /^in \d+\nout \d+\n$/);
  // It waits 20 minutes for a live holder: well under that means it took over.
  assert.ok(Date.now() - started < 30000, `took ${Date.now() - started} ms`);
  assert.equal(fs.existsSync(lock), false);
});
