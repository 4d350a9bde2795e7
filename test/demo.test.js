'use strict';
// `npm run demo`, as the README shows it: ends by itself, exit 0, in about 12 s,
// and tells the story (healthy while busy, unhealthy while stuck, recovered).
const test = require('node:test');
const assert = require('node:assert/strict');
const { PKG, assertExit } = require('./helpers');
const { cleanEnv, run } = require('./sandbox');
const readme = require('./readme');

test('the demo runs by itself and exits 0 well within 15 s', async () => {
  const shown = readme.blocks().filter((b) => b.marker === 'demo');
  assert.equal(shown.length, 1, 'README.md and docs/ show the demo once');
  // The set-up line a fresh clone needs, then the demo (this checkout is installed already).
  assert.equal(shown[0].body, 'npm install\nnpm run demo\n');
  const result = await run(['sh', '-e', '-c', shown[0].body.replace(/^npm install\n/, '')], { cwd: PKG, env: cleanEnv({ NO_COLOR: '1' }), timeout: 60000 });
  assertExit(result, 0);
  // The demo's own timeline is 11.5 s; the margin is for a loaded machine.
  assert.ok(result.ms < 15000, `the demo took ${(result.ms / 1000).toFixed(1)} s`);
  const out = result.stdout;
  assert.match(out, /── busy: /);
  assert.match(out, /exit 1 {2}FAIL {2}stalled since \d\d:\d\d:\d\d\.\d, loop silent \d\.\d s/);
  assert.match(out, /busy +\d+ ok +healthy: busy for less than maxStall is not stuck/);
  assert.match(out, /stuck +\d+ ok, \d+ failed +unhealthy [\d.]+ s into the stall/);
  assert.match(out, /All as expected, in [\d.]+ s\./);
  assert.doesNotMatch(out, /\x1b\[/, 'colors with NO_COLOR or no terminal');
});
