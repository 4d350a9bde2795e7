'use strict';
// The stack capture addon (native/stack/) and its loader (src/native/stack.ts): a
// native thread reads the JavaScript stack of a thread that is stuck, through
// a V8 interrupt, with a bounded wait. Every capture runs in a child process
// (test/fixtures/stack/), so a crash is a failed assertion.
// Independent of the pulse strategy: runs in the native pass of `npm test`.
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { describe, test } = require('node:test');
const { stackSourceDigest } = require('../scripts/stack-digest.js');

const ROOT = path.join(__dirname, '..');
const FIXTURES = path.join(__dirname, 'fixtures', 'stack');
const OK = 0;
const TIMEOUT = 1;
// Emulated rows of the matrix (qemu) run everything several times slower.
const SLOW = process.env.PULSE_MATRIX_LAUNCHER ? 5 : 1;
const skip = process.env.PULSE_TEST_STRATEGY === 'worker' ? 'does not depend on the strategy: runs in the native pass' : false;
const ABIS = { 20: 115, 22: 127, 24: 137, 26: 147 };
const EXPECTED = ['linux-arm64', 'linux-x64'].flatMap((dir) =>
  Object.values(ABIS).map((abi) => `${dir}/stack/stack-abi${abi}.glibc.node`));

/** Runs a fixture in a child with a hard timeout; resolves {status, signal, stdout, stderr, json}. */
function runFixture(name, args = [], timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(FIXTURES, name), ...args.map(String)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not end within ${timeoutMs * SLOW} ms; stderr: ${stderr}`));
    }, timeoutMs * SLOW);
    child.on('error', (error) => { clearTimeout(timer); reject(error); });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      let json;
      try { json = JSON.parse(stdout); } catch { /* asserted by the caller */ }
      resolve({ status, signal, stdout, stderr, json });
    });
  });
}

function assertExited(result, name) {
  assert.equal(result.signal, null, `${name} died of ${result.signal}; stderr: ${result.stderr}`);
  assert.equal(result.status, 0, `${name} exited ${result.status}; stderr: ${result.stderr}`);
  assert.ok(result.json, `${name} printed no JSON: ${result.stdout}; stderr: ${result.stderr}`);
}

/** 1-based line and column of `needle` in a fixture, on the line holding `lineMark`. */
function position(name, lineMark, needle = lineMark) {
  const lines = fs.readFileSync(path.join(FIXTURES, name), 'utf8').split('\n');
  const index = lines.findIndex((l) => l.includes(lineMark));
  assert.ok(index >= 0, `${lineMark} not found in ${name}`);
  const column = lines[index].indexOf(needle);
  assert.ok(column >= 0, `${needle} not found on line ${index + 1} of ${name}`);
  return { line: index + 1, column: column + 1, text: lines[index] };
}

const names = (frames) => frames.map((f) => f.function);

describe('stack capture', { skip, concurrency: true }, () => {
  test('a native thread reads a main thread stuck three calls deep (c, b, a) with file, line and column', async () => {
    const result = await runFixture('busy.js', [150, 1, 0]);
    assertExited(result, 'busy.js');
    const [record] = result.json.records;
    assert.equal(record.code, OK, JSON.stringify(record));
    const file = path.join(FIXTURES, 'busy.js');
    const frames = record.frames;
    assert.deepEqual(names(frames).slice(0, 3), ['c', 'b', 'a'], JSON.stringify(frames));
    for (const f of frames.slice(0, 4)) assert.equal(f.file, file);
    // c is stopped somewhere in its loop: on that line, inside the loop.
    const loop = position('busy.js', 'function c()', 'while');
    assert.equal(frames[0].line, loop.line);
    assert.ok(frames[0].column >= loop.column && frames[0].column <= loop.text.length,
      `c at column ${frames[0].column}, its loop spans ${loop.column}..${loop.text.length}`);
    // b and a are stopped at their calls.
    const inB = position('busy.js', 'function b()', 'c()');
    const inA = position('busy.js', 'function a()', 'b()');
    assert.deepEqual({ line: frames[1].line, column: frames[1].column }, { line: inB.line, column: inB.column });
    assert.deepEqual({ line: frames[2].line, column: frames[2].column }, { line: inA.line, column: inA.column });
    const top = position('busy.js', 'a();');
    assert.deepEqual({ function: frames[3].function, line: frames[3].line, column: frames[3].column },
      { function: '', line: top.line, column: top.column });
    assert.ok(record.count === frames.length && record.count <= 32);
    assert.ok(record.interruptNs > 0 && record.interruptNs <= record.elapsedNs,
      `interruptNs ${record.interruptNs}, elapsedNs ${record.elapsedNs}`);
    assert.deepEqual(result.json.stats, { requested: 1, ran: 1, discarded: 0, pending: false });
  });

  test('repeated captures of a spinning thread each get an answer and queue one interrupt each', async () => {
    const result = await runFixture('busy.js', [100, 20, 5]);
    assertExited(result, 'busy.js');
    const { records, stats } = result.json;
    assert.equal(records.length, 20);
    for (const r of records) {
      assert.equal(r.code, OK, JSON.stringify(r));
      assert.deepEqual(names(r.frames).slice(0, 3), ['c', 'b', 'a']);
    }
    assert.deepEqual(stats, { requested: 20, ran: 20, discarded: 0, pending: false });
  });

  test('a thread blocked in execSync: bounded TIMEOUT, one pending interrupt, its late answer discarded', async () => {
    const result = await runFixture('blocked.js', [SLOW], 40000);
    assertExited(result, 'blocked.js');
    const out = result.json;
    assert.ok(out.sleptMs >= 1900 * SLOW, `slept ${out.sleptMs} ms`);
    for (const key of ['first', 'second']) {
      const r = out[key];
      assert.equal(r.code, TIMEOUT, `${key}: ${JSON.stringify(r)}`);
      assert.equal(r.count, 0);
      assert.deepEqual(r.frames, []);
      assert.equal(r.interruptNs, 0);
      // Waited its 300 ms, and not much longer.
      assert.ok(r.elapsedNs >= 290e6 && r.elapsedNs < 300e6 + 1000e6 * SLOW, `${key} waited ${r.elapsedNs / 1e6} ms`);
    }
    // The second capture found the first interrupt pending and queued no other;
    // that one ran once JavaScript ran again, with nobody waiting.
    assert.deepEqual(out.afterLate, { requested: 1, ran: 1, discarded: 1, pending: false });
    // A later capture gets the stack of its own moment, nothing from before.
    assert.equal(out.third.code, OK, JSON.stringify(out.third));
    assert.deepEqual(names(out.third.frames).slice(0, 2), ['spin', 'laterBusy']);
    assert.ok(!names(out.third.frames).includes('afterBlock'));
    assert.deepEqual(out.afterThird, { requested: 2, ran: 2, discarded: 1, pending: false });
    // A capture still waiting when the block ends is answered then, with the
    // stack at that moment (in or after the execSync of phase 3).
    const fourth = out.fourth;
    assert.equal(fourth.code, OK, JSON.stringify(fourth));
    assert.ok(fourth.elapsedNs >= 500e6, `fourth answered after ${fourth.elapsedNs / 1e6} ms, inside the block`);
    const phase3 = position('blocked.js', '// phase 3').line;
    const own = fourth.frames.filter((f) => f.file === path.join(FIXTURES, 'blocked.js'));
    assert.ok(own.length > 0, JSON.stringify(fourth.frames));
    for (const f of own) assert.ok(f.line >= phase3, `frame ${JSON.stringify(f)} is from before phase 3`);
    assert.deepEqual(out.afterFourth, { requested: 3, ran: 3, discarded: 1, pending: false });
  });

  test('in a worker thread, attach() binds the worker: its capture names the worker frames', async () => {
    const result = await runFixture('worker-stuck.js');
    assertExited(result, 'worker-stuck.js');
    const [record] = result.json.records;
    assert.equal(record.code, OK, JSON.stringify(record));
    const file = path.join(FIXTURES, 'worker-stuck.js');
    assert.deepEqual(names(record.frames).slice(0, 2), ['w2', 'w1'], JSON.stringify(record.frames));
    assert.equal(record.frames[0].file, file);
    assert.equal(record.frames[0].line, position('worker-stuck.js', 'function w2()').line);
    const call = position('worker-stuck.js', 'function w1()', 'w2()');
    assert.deepEqual({ line: record.frames[1].line, column: record.frames[1].column },
      { line: call.line, column: call.column });
    assert.ok(!names(record.frames).includes('mainSpin'));
  });

  test('50 workers terminated with captures pending or running: exit 0, no signal, the addon stays mapped', async () => {
    const result = await runFixture('terminate.js', [50], 60000);
    assertExited(result, 'terminate.js');
    assert.equal(result.json.ended, 50);
    assert.equal(result.json.mapped, true, 'the addon was unmapped after its workers ended');
  });
});

describe('stack prebuilds', { skip }, () => {
  test('prebuilds/ holds a stack binary for each Node ABI on linux-x64 and linux-arm64', () => {
    const found = ['linux-arm64', 'linux-x64'].flatMap((dir) =>
      fs.readdirSync(path.join(ROOT, 'prebuilds', dir, 'stack')).sort()
        .map((n) => `${dir}/stack/${n}`));
    assert.deepEqual(found, EXPECTED);
  });

  for (const rel of EXPECTED) {
    const file = path.join(ROOT, 'prebuilds', rel);
    test(`${rel} was built from the current sources, needs at most GLIBC_2.28 and no libstdc++, and is pinned`, (t) => {
      const text = fs.readFileSync(file).toString('latin1');
      const digests = [...text.matchAll(/(?<=\0)[0-9a-f]{32}(?=\0)/g)].map((m) => m[0]);
      const want = stackSourceDigest(ROOT);
      assert.deepEqual(digests, [want], `${rel} was built from other sources: run scripts/prebuild-stack.sh`);
      const abi = /stack-abi(\d+)\.glibc\.node$/.exec(rel)[1];
      assert.match(text, new RegExp(`node_register_module_v${abi}\\0`), `${rel} is not built for ABI ${abi}`);
      const objdump = spawnSync('objdump', ['-T', file], { encoding: 'utf8' });
      if (objdump.error) return t.skip('objdump is not installed (binutils)');
      assert.equal(objdump.status, 0, objdump.stderr);
      const versions = [...objdump.stdout.matchAll(/\((GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\)/g)];
      assert.ok(versions.length > 0);
      const above = versions.filter(([, lib, v]) => lib !== 'GLIBC' || v.split('.').map(Number)[1] > 28);
      assert.deepEqual(above.map((m) => m[0]), [], `${rel} needs newer symbols (see native/glibc_floor.h)`);
      const readelf = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
      assert.match(readelf.stdout, /NODELETE/, `${rel} is not linked with -z nodelete`);
    });
  }

  test('node-gyp-build, which loads the core from the same folders, never takes a stack binary', () => {
    for (const LIBC of ['glibc', 'musl']) {
      const result = spawnSync(process.execPath, ['-e', `
        try { console.log(require('node-gyp-build').resolve(${JSON.stringify(ROOT)})); }
        catch (error) { console.log('none: ' + error.message.split('\\n')[0]); }
      `], { env: { ...process.env, LIBC, PREBUILDS_ONLY: '1' }, encoding: 'utf8', timeout: 30000 * SLOW });
      assert.equal(result.status, 0, result.stderr);
      assert.doesNotMatch(result.stdout, /stack-abi/, `with LIBC=${LIBC}`);
      if (LIBC === 'glibc') assert.match(result.stdout, /celery-pulse-native\.glibc\.node$/m);
    }
  });

  test('the binary for this Node loads and reports the current sources', (t) => {
    const target = `${process.platform}-${process.arch}`;
    const file = path.join(ROOT, 'prebuilds', target, 'stack', `stack-abi${process.versions.modules}.glibc.node`);
    if (!fs.existsSync(file)) return t.skip(`no stack prebuild for ${target} ABI ${process.versions.modules}`);
    const binding = require(file);
    assert.equal(binding.sourceDigest, stackSourceDigest(ROOT));
    assert.equal(binding.abi, Number(process.versions.modules));
    assert.equal(binding.apiVersion, 2);
    assert.equal(binding.maxFrames, 32);
  });

  test('the test exports refuse bad arguments with a coded error naming the argument and value', () => {
    const file = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'stack', `stack-abi${process.versions.modules}.glibc.node`);
    if (!fs.existsSync(file)) return;
    const binding = require(file);
    assert.throws(() => binding._captureLater(1, 2n, 0, 0, 1, 0, false),
      { name: 'TypeError', code: 'ERR_PULSE_STACK_ARGUMENT', message: /argument api must be a non-zero BigInt address, got 1/ });
    assert.throws(() => binding._captureLater(1n, 2n, -5, 0, 1, 0, false),
      { code: 'ERR_PULSE_STACK_ARGUMENT', message: /argument delayMs must be an integer in 0\.\.600000, got -5/ });
    assert.throws(() => binding._stats(0n), { code: 'ERR_PULSE_STACK_ARGUMENT', message: /argument ctx .* got 0/ });
  });
});

describe('stack loader (dist/native/stack.js)', { skip }, () => {
  /** Runs loadStack() in a child, from a package root, and returns what it gave. */
  function load(root, { env = {}, before = '' } = {}) {
    const script = `${before}
      const { loadStack } = require(${JSON.stringify(path.join(root, 'dist', 'native', 'stack.js'))});
      const first = loadStack();
      const same = loadStack() === first;
      const out = { same, file: first.file, unavailable: first.unavailable };
      if (first.attach) { const pair = first.attach(); out.pair = pair.map((v) => typeof v); }
      process.stdout.write(JSON.stringify(out));`;
    const cleanEnv = { ...process.env };
    delete cleanEnv.PREBUILDS_ONLY;
    const result = spawnSync(process.execPath, ['-e', script], {
      env: { ...cleanEnv, ...env }, encoding: 'utf8', timeout: 30000 * SLOW, killSignal: 'SIGKILL',
    });
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(result.stdout);
  }

  /** A package root in a temporary folder holding dist/native/stack.js and the given files. */
  function fakeRoot(t, files) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-stack-'));
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    fs.mkdirSync(path.join(root, 'dist', 'native'), { recursive: true });
    fs.copyFileSync(path.join(ROOT, 'dist', 'native', 'stack.js'), path.join(root, 'dist', 'native', 'stack.js'));
    for (const [rel, source] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      if (Buffer.isBuffer(source)) fs.writeFileSync(path.join(root, rel), source);
      else fs.copyFileSync(source, path.join(root, rel));
    }
    return root;
  }

  const target = `${process.platform}-${process.arch}`;
  const abi = process.versions.modules;
  const own = path.join(ROOT, 'prebuilds', target, 'stack', `stack-abi${abi}.glibc.node`);
  const other = path.join(ROOT, 'prebuilds', target, 'stack', `stack-abi${abi === '115' ? '147' : '115'}.glibc.node`);
  const ready = fs.existsSync(own) && fs.existsSync(other) ? false : `no stack prebuilds for ${target}`;

  test('loads the prebuild for this Node once per environment; attach() gives two BigInts', { skip: ready }, () => {
    const out = load(ROOT, { env: { PREBUILDS_ONLY: '1' } });
    assert.deepEqual(out, { same: true, file: own, pair: ['bigint', 'bigint'] });
  });

  test('Bun and Deno: unavailable, nothing loaded', () => {
    for (const [runtime, name] of [['bun', 'Bun'], ['deno', 'Deno']]) {
      const before = `Object.defineProperty(process.versions, '${runtime}', { value: '1.0.0' });`;
      assert.deepEqual(load(ROOT, { before }), { same: true, unavailable: `no stack support in ${name}` });
    }
  });

  test('no binary for this ABI: unavailable, saying which Node, ABI and platform', (t) => {
    const root = fakeRoot(t, {});
    assert.deepEqual(load(root), {
      same: true,
      unavailable: `no stack support built for Node ${process.version} (ABI ${abi}) on ${target}`,
    });
  });

  test('musl (LIBC=musl, as on Alpine): the glibc binaries are not taken', () => {
    assert.deepEqual(load(ROOT, { env: { LIBC: 'musl' } }), {
      same: true,
      unavailable: `no stack support built for Node ${process.version} (ABI ${abi}) on ${target} (musl)`,
    });
  });

  test('a binary that fails to load: unavailable with the error text, never a throw', (t) => {
    const root = fakeRoot(t, { [`prebuilds/${target}/stack/stack-abi${abi}.glibc.node`]: Buffer.from('not an ELF file') });
    const out = load(root);
    assert.match(out.unavailable, /^the stack addon could not be loaded: .*(invalid ELF header|file too short)/);
  });

  test('a local build of this ABI comes first; PREBUILDS_ONLY=1 and a build for another ABI are skipped', { skip: ready }, (t) => {
    const root = fakeRoot(t, {
      'build/Release/pulse_stack.node': own,
      [`prebuilds/${target}/stack/stack-abi${abi}.glibc.node`]: own,
    });
    const local = path.join(root, 'build', 'Release', 'pulse_stack.node');
    const prebuild = path.join(root, 'prebuilds', target, 'stack', `stack-abi${abi}.glibc.node`);
    assert.equal(load(root).file, local);
    assert.equal(load(root, { env: { PREBUILDS_ONLY: '1' } }).file, prebuild);
    fs.copyFileSync(other, local);
    assert.equal(load(root).file, prebuild);
  });
});
