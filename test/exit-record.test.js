'use strict';
// process.exit() with a running pulse leaves the file as stop() does, under
// both strategies: the record says "stopped" (or, with removeOnStop, the file
// is gone), and the mtime stays at the last beat.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { runChild, tmpDir, STRATEGY } = require('./helpers');

for (const code of [0, 3]) {
  test(`process.exit(${code}) with a running ${STRATEGY} pulse leaves a "stopped" record`, (t) => {
    const file = path.join(tmpDir(t), 'health');
    const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 0.05, maxStall: 5, strategy: STRATEGY });
      setTimeout(() => { console.log(require('node:fs').readFileSync(${JSON.stringify(file)}, 'utf8')); process.exit(${code}); }, 300);`);
    assert.equal(result.status, code, result.stderr);
    assert.equal(result.signal, null);
    assert.equal(JSON.parse(result.stdout).state, 'running', 'the record said "running" before the exit');
    const record = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(record.state, 'stopped');
    assert.equal(record.strategy, STRATEGY);
    assert.match(record.message, /^stopped at /);
  });
}

test(`process.exit(0) with a running ${STRATEGY} removeOnStop pulse removes the file`, (t) => {
  const file = path.join(tmpDir(t), 'health');
  const result = runChild(`pulse.start({ file: ${JSON.stringify(file)}, interval: 0.05, removeOnStop: true, strategy: STRATEGY });
    setTimeout(() => process.exit(0), 200);`);
  assert.equal(result.status, 0, result.stderr);
  assert.ok(!fs.existsSync(file), 'the file was left in place');
});
