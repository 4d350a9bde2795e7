'use strict';
// The committed binaries in prebuilds/: built from the sources in this tree;
// the glibc ones loadable on glibc 2.28 / libstdc++ of GCC 8 (RHEL 8, Debian
// 10), the musl ones needing nothing but musl's libc.so (Alpine).
// Rebuild them with `npm run prebuild`.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { sourceDigest } = require('../scripts/digest.js');

const ROOT = path.join(__dirname, '..');
const PREBUILDS = path.join(ROOT, 'prebuilds');
const GLIBC = ['linux-arm64/celery-pulse-native.glibc.node', 'linux-x64/celery-pulse-native.glibc.node'];
const MUSL = ['linux-arm64/celery-pulse-native.musl.node', 'linux-x64/celery-pulse-native.musl.node'];
const EXPECTED = [GLIBC[0], MUSL[0], GLIBC[1], MUSL[1]];
// What a musl binary may export: the Node-API entry points (scripts/napi-exports.map).
const NAPI_EXPORTS = ['napi_register_module_v1', 'node_api_module_get_api_version_v1'];
// The newest symbol version each library may require.
const FLOORS = { GLIBC: '2.28', GLIBCXX: '3.4.25', CXXABI: '1.3.11' };

// The per-ABI stack capture binaries, in a stack/ folder of their own (where
// node-gyp-build, which takes any .node file whose tags match, never looks),
// are checked by test/stack.test.js.
function committed() {
  return fs.readdirSync(PREBUILDS).sort().flatMap((dir) =>
    fs.readdirSync(path.join(PREBUILDS, dir)).sort()
      .filter((name) => name !== 'stack')
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

/** `objdump <flag>` output, or a reason it could not be had. */
function objdump(flag, file) {
  const result = spawnSync('objdump', [flag, file], { encoding: 'utf8' });
  if (result.error && result.error.code === 'ENOENT') return { skip: 'objdump is not installed (binutils)' };
  if (result.error) throw result.error;
  assert.equal(result.status, 0, `objdump ${flag} ${file} failed: ${result.stderr}`);
  return { text: result.stdout };
}
const dynamicSymbols = (file) => objdump('-T', file);

test('prebuilds/ holds exactly the linux-x64 and linux-arm64 binaries for glibc and musl', () => {
  assert.deepEqual(committed(), EXPECTED);
});

for (const rel of EXPECTED) {
  test(`${rel} was built from the current sources`, () => {
    const file = path.join(PREBUILDS, rel);
    const want = sourceDigest(ROOT);
    const found = digestsIn(file);
    assert.equal(found.length, 1, `expected one source digest string in ${rel}, found ${found.length}`);
    assert.equal(found[0], want,
      `${rel} was built from other sources (digest ${found[0]}, tree ${want}): run npm run prebuild`);
  });
}

for (const rel of GLIBC) {
  const file = path.join(PREBUILDS, rel);

  test(`${rel} needs glibc's libc.so.6`, (t) => {
    const headers = objdump('-p', file);
    if (headers.skip) return t.skip(headers.skip);
    assert.ok(neededLibs(headers.text).includes('libc.so.6'), `${rel} does not link glibc's libc.so.6`);
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

/** The NEEDED entries of objdump -p output. */
function neededLibs(text) {
  return [...text.matchAll(/^\s*NEEDED\s+(\S+)$/gm)].map((m) => m[1]);
}

for (const rel of MUSL) {
  const file = path.join(PREBUILDS, rel);
  const [machine, name] = rel.startsWith('linux-x64/') ? [62, 'x86-64'] : [183, 'AArch64'];

  test(`${rel} is an ${name} shared object that needs only musl's libc.so`, (t) => {
    const elf = fs.readFileSync(file);
    // ELF header: 64-bit, little-endian, a shared object (ET_DYN), e_machine.
    assert.deepEqual([elf.toString('latin1', 0, 4), elf[4], elf[5], elf.readUInt16LE(16)], ['\x7fELF', 2, 1, 3]);
    assert.equal(elf.readUInt16LE(18), machine, `${rel} is not an ${name} binary`);
    const headers = objdump('-p', file);
    if (headers.skip) return t.skip(headers.skip);
    assert.deepEqual(neededLibs(headers.text), ['libc.so'],
      `${rel} must link libc++ statically and need nothing but libc.so`);
  });

  test(`${rel} has no glibc symbol versions and exports only the Node-API entry points`, (t) => {
    const symbols = dynamicSymbols(file);
    if (symbols.skip) return t.skip(symbols.skip);
    assert.doesNotMatch(symbols.text, /GLIBC|GLIBCXX|CXXABI/, `${rel} asks for glibc symbol versions`);
    const defined = [...symbols.text.matchAll(/^[0-9a-f]+ g\s+\S*\s+(\S+)\s+[0-9a-f]+\s+(\S+)$/gm)]
      .filter((m) => m[1] !== '*UND*')
      .map((m) => m[2])
      .sort();
    assert.deepEqual(defined, NAPI_EXPORTS);
    const imported = [...symbols.text.matchAll(/\*UND\*\s+[0-9a-f]+\s+(\S+)$/gm)].map((m) => m[1]);
    assert.ok(imported.includes('napi_create_function'), 'expected Node-API imports');
    // musl has statx() only from 1.2.5: the binaries must load on 1.2.3.
    assert.ok(!imported.includes('statx'), `${rel} calls statx()`);
  });
}

test('node-gyp-build picks the musl binary with LIBC=musl', () => {
  const result = spawnSync(process.execPath, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(ROOT)})`], {
    env: { ...process.env, LIBC: 'musl', PREBUILDS_ONLY: '1' },
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  const arch = { x64: 'linux-x64', arm64: 'linux-arm64' }[process.arch];
  assert.equal(result.stdout.trim(), path.join(PREBUILDS, arch, 'celery-pulse-native.musl.node'));
});

test('node-gyp-build picks the musl binary where /etc/alpine-release exists', (t) => {
  // A private mount namespace with an empty /etc holding only alpine-release:
  // as root, or through a user namespace where those are allowed.
  const script = `mount -t tmpfs none /etc && touch /etc/alpine-release && exec "$0" -p "$1"`;
  const code = `require('node-gyp-build').resolve(${JSON.stringify(ROOT)})`;
  const env = { ...process.env, PREBUILDS_ONLY: '1' };
  delete env.LIBC;
  delete env.NODE_EXTRA_CA_CERTS;
  let result;
  for (const flags of [['-m'], ['-r', '-m']]) {
    result = spawnSync('unshare', [...flags, 'sh', '-c', script, process.execPath, code], { env, encoding: 'utf8', timeout: 30_000 });
    if (result.status === 0) break;
  }
  if (result.error?.code === 'ENOENT') return t.skip('unshare is not installed (util-linux)');
  if (result.status !== 0) return t.skip(`no mount namespace here: ${result.stderr.trim()}`);
  const arch = { x64: 'linux-x64', arm64: 'linux-arm64' }[process.arch];
  assert.equal(result.stdout.trim(), path.join(PREBUILDS, arch, 'celery-pulse-native.musl.node'));
});

test('the prebuild for this machine loads and reports the current sources', (t) => {
  const arch = { x64: 'linux-x64', arm64: 'linux-arm64' }[process.arch];
  if (process.platform !== 'linux' || !arch) return t.skip(`no prebuild for ${process.platform}-${process.arch}`);
  const binding = require(path.join(PREBUILDS, arch, 'celery-pulse-native.glibc.node'));
  assert.equal(binding.sourceDigest, sourceDigest(ROOT));
  assert.equal(typeof binding.PulseHandle, 'function');
});

test('on glibc (LIBC=glibc) the musl prebuilds are never picked', () => {
  const result = spawnSync(process.execPath, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(ROOT)})`], {
    env: { ...process.env, LIBC: 'glibc', PREBUILDS_ONLY: '1' },
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout.trim(), /celery-pulse-native\.glibc\.node$/);
});
