'use strict';
// The committed binaries in prebuilds/: built from the sources in this tree,
// and loadable on glibc 2.28 / libstdc++ of GCC 8 (RHEL 8, Debian 10).
// Rebuild them with `npm run prebuild`.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { sourceDigest } = require('../scripts/digest.js');

const ROOT = path.join(__dirname, '..');
const PREBUILDS = path.join(ROOT, 'prebuilds');
const EXPECTED = ['linux-arm64/celery-pulse-native.glibc.node', 'linux-x64/celery-pulse-native.glibc.node'];
// The newest symbol version each library may require.
const FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11' };

// The per-ABI stack capture binaries (stack-abi<N>.glibc.node) beside the core are
// checked by test/stack.test.js.
function committed() {
  return fs.readdirSync(PREBUILDS).sort().flatMap((dir) =>
    fs.readdirSync(path.join(PREBUILDS, dir)).sort()
      .filter((name) => !/^stack-abi\d+\.(glibc|musl)\.node$/.test(name))
      .map((name) => `${dir}/${name}`));
}

/** Versions as number arrays, so 2.3.3 < 2.28. */
function compareVersions(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  }
  return 0;
}

/** NUL-terminated strings of exactly 32 lowercase hex digits in the file. */
function digestsIn(file) {
  const text = fs.readFileSync(file).toString('latin1');
  return [...text.matchAll(/(?<=\0)[0-9a-f]{32}(?=\0)/g)].map((m) => m[0]);
}

/** `objdump -T` output, or a reason it could not be had. */
function dynamicSymbols(file) {
  const result = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
  if (result.error && result.error.code === 'ENOENT') return { skip: 'objdump is not installed (binutils)' };
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `objdump -T ${file} failed: ${result.stderr}`);
  return { text: result.stdout };
}

test('prebuilds/ holds exactly the linux-x64 and linux-arm64 glibc binaries', () => {
  assert.deepEqual(committed(), EXPECTED);
});

for (const rel of EXPECTED) {
  const file = path.join(PREBUILDS, rel);

  test(`${rel} was built from the current sources`, () => {
    const want = sourceDigest(ROOT);
    const found = digestsIn(file);
    assert.equal(found.length, 1, `expected one source digest string in ${rel}, found ${found.length}`);
    assert.equal(found[0], want,
      `${rel} was built from other sources (digest ${found[0]}, tree ${want}): run npm run prebuild`);
  });

  test(`${rel} needs at most GLIBC_${FLOORS.GLIBC}, GLIBCXX_${FLOORS.GLIBCXX}, CXXABI_${FLOORS.CXXABI}`, (t) => {
    const symbols = dynamicSymbols(file);
    if (symbols.skip) return t.skip(symbols.skip);
    const needed = {};
    for (const [, lib, version, name] of symbols.text.matchAll(/\((GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)\s+(\S+)/g)) {
      (needed[lib] ||= []).push({ version, name });
    }
    assert.ok(needed.GLIBC?.length > 0, `no GLIBC symbol versions in objdump -T output of ${rel}`);
    for (const [lib, floor] of Object.entries(FLOORS)) {
      const above = (needed[lib] || []).filter((s) => compareVersions(s.version, floor) > 0);
      assert.deepEqual(above.map((s) => `${s.name}@${lib}_${s.version}`), [],
        `${rel} needs symbols newer than ${lib}_${floor} (see native/glibc_floor.h)`);
    }
  });
}

test('the prebuild for this machine loads and reports the current sources', (t) => {
  const arch = { x64: 'linux-x64', arm64: 'linux-arm64' }[process.arch];
  if (process.platform !== 'linux' || !arch) return t.skip(`no prebuild for ${process.platform}-${process.arch}`);
  const binding = require(path.join(PREBUILDS, arch, 'celery-pulse-native.glibc.node'));
  assert.equal(binding.sourceDigest, sourceDigest(ROOT));
  assert.equal(typeof binding.PulseHandle, 'function');
});

test('on musl (LIBC=musl, as node-gyp-build sets on Alpine) the glibc prebuilds are never loaded', () => {
  const result = spawnSync(process.execPath, ['-e', `
    try { require('node-gyp-build')(${JSON.stringify(ROOT)}); console.log('loaded'); }
    catch (error) { console.log('refused: ' + error.message); }
  `], { env: { ...process.env, LIBC: 'musl', PREBUILDS_ONLY: '1' }, encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^refused: .*libc=musl/);
});
