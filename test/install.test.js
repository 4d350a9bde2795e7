'use strict';
// The packed package installs and beats on a machine with no compiler, make
// or Python: cc, gcc, g++, c++, clang, make, python and python3 are shadowed
// by stubs that record the call and fail. Needs the npm registry (for the
// dependencies), so it runs only with PULSE_INSTALL_TEST=1 (.ci/run sets it).
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, test } = require('node:test');

const ROOT = path.join(__dirname, '..');
const ENABLED = process.env.PULSE_INSTALL_TEST === '1';
const TOOLS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'python', 'python3'];
const PREBUILD = { x64: 'linux-x64', arm64: 'linux-arm64' }[process.arch];
const skip = !ENABLED ? 'set PULSE_INSTALL_TEST=1 to run (uses the npm registry; about 20 s)'
  : process.platform !== 'linux' || !PREBUILD ? `no prebuild for ${process.platform}-${process.arch}`
    : false;

/** Environment of a user's shell: no npm_* from `npm test`, no test switches. */
function userEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_|^PREBUILDS_ONLY$|^NODE_OPTIONS$|^PULSE_|^CELERY_PULSE_/i.test(key)) env[key] = value;
  }
  return { ...env, ...extra };
}

let work;
let packed;
after(() => work && fs.rmSync(work, { recursive: true, force: true }));

/**
 * Packs this tree once, as from a clean clone: npm pack runs prepare (tsc) in
 * a copy, so the dist/ that parallel test files load is never rewritten.
 */
function pack() {
  if (packed) return packed;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-install-'));
  const src = path.join(work, 'src-copy');
  const skipTop = new Set(['.git', 'node_modules', '.cache', 'build', 'dist']);
  fs.cpSync(ROOT, src, { recursive: true, filter: (from) => !skipTop.has(path.relative(ROOT, from)) });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: src, env: userEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [{ filename, files }] = JSON.parse(out.slice(out.indexOf('[')));
  packed = { tarball: path.join(work, filename), files: files.map((f) => f.path) };
  return packed;
}

/** A fresh project with `npm install <tarball>` run under stubbed build tools. */
function install(name, tarball, extraEnv = {}) {
  const app = path.join(work, name);
  const stubs = path.join(work, `${name}-stubs`);
  const calls = path.join(work, `${name}-stub-calls.log`);
  fs.mkdirSync(app);
  fs.mkdirSync(stubs);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }));
  for (const tool of TOOLS) {
    fs.writeFileSync(path.join(stubs, tool),
      `#!/bin/sh\necho "${tool} $*" >> '${calls}'\necho "${tool}: not installed (stub)" >&2\nexit 127\n`, { mode: 0o755 });
  }
  const env = userEnv({ PATH: `${stubs}:${process.env.PATH}`, ...extraEnv });
  const result = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
    cwd: app, env, encoding: 'utf8', timeout: 300000,
  });
  const called = fs.existsSync(calls) ? fs.readFileSync(calls, 'utf8') : '';
  return { app, env, result, called, pkg: path.join(app, 'node_modules', 'celery-pulse-native') };
}

test('npm pack ships only what users need', { skip, timeout: 300000 }, () => {
  const { files } = pack();
  const unexpected = files.filter((f) => !/^(dist\/([^/]+\/)?[^/]+\.(js|d\.ts)|bin\/[^/]+\.js|native\/[^/]+\.(cc|h)|native\/stack\/[^/]+\.(cc|h|gyp)|prebuilds\/linux-(x64|arm64)\/(celery-pulse-native\.(glibc|musl)|stack\/stack-abi\d+\.glibc)\.node|binding\.gyp|scripts\/(stack-)?digest\.js|package\.json|README\.md|LICENSE)$/.test(f));
  assert.deepEqual(unexpected, [], 'files in the tarball that users do not need');
  for (const needed of ['dist/index.js', 'binding.gyp', 'scripts/digest.js', 'native/addon.cc',
    'prebuilds/linux-x64/celery-pulse-native.glibc.node', 'prebuilds/linux-arm64/celery-pulse-native.glibc.node',
    'prebuilds/linux-x64/celery-pulse-native.musl.node', 'prebuilds/linux-arm64/celery-pulse-native.musl.node']) {
    assert.ok(files.includes(needed), `${needed} missing from the tarball`);
  }
});

test('installs with no compiler, loads the prebuild and beats', { skip, timeout: 600000 }, () => {
  const { tarball } = pack();
  const { app, env, result, called, pkg } = install('app', tarball);
  assert.equal(result.status, 0, `npm install failed\n${result.stdout}\n${result.stderr}`);
  assert.equal(called, '', 'a build tool was called during install');
  assert.ok(fs.existsSync(path.join(pkg, 'dist', 'index.js')), 'package not installed');
  assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'build/ appeared: the install compiled instead of using the prebuild');

  const file = path.join(app, 'beat', 'healthcheck');
  const child = spawnSync(process.execPath, ['-e', `
    const fs = require('node:fs');
    const { start } = require('celery-pulse-native');
    const loaded = require('node-gyp-build').resolve(require.resolve('celery-pulse-native/package.json').replace(/package\\.json$/, ''));
    const pulse = start({ file: ${JSON.stringify(file)}, interval: 0.2 });
    const first = fs.statSync(${JSON.stringify(file)}).mtimeMs;
    const end = Date.now() + 10000;
    const wait = () => {
      const now = fs.statSync(${JSON.stringify(file)}).mtimeMs;
      if (now > first || Date.now() > end) {
        const s = pulse.status();
        pulse.stop();
        console.log(JSON.stringify({ loaded, moved: now > first, strategy: s.strategy, beats: s.beats }));
      } else setTimeout(wait, 50);
    };
    setTimeout(wait, 50);
  `], { cwd: app, env, encoding: 'utf8', timeout: 60000 });
  assert.equal(child.status, 0, `child failed\n${child.stdout}\n${child.stderr}`);
  const report = JSON.parse(child.stdout.trim().split('\n').pop());
  assert.equal(report.loaded, path.join(fs.realpathSync(pkg), 'prebuilds', PREBUILD, 'celery-pulse-native.glibc.node'));
  assert.equal(report.strategy, 'native');
  assert.ok(report.moved, 'the healthcheck file was never touched again after start');
  assert.ok(report.beats >= 2, `beats ${report.beats}`);
  assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'build/ appeared at run time');
});

test('on musl the installed package resolves to the musl prebuild', { skip, timeout: 600000 }, () => {
  const { tarball } = pack();
  // LIBC=musl makes node-gyp-build behave as on Alpine (which it detects by
  // /etc/alpine-release). Its install step test-loads the musl binary, which
  // this glibc Node cannot, so here it tries a source build (the stubs fail
  // it); on musl the load succeeds and nothing is built (test/runtimes/run.sh
  // loads these binaries on musl).
  const { app, env, result, pkg } = install('app-musl', tarball, { LIBC: 'musl' });
  assert.equal(result.status, 0, `npm install failed\n${result.stdout}\n${result.stderr}`);
  assert.ok(!fs.existsSync(path.join(pkg, 'build')), 'build/ appeared: it would be loaded instead of the prebuild');
  const child = spawnSync(process.execPath, ['-p', `require('node-gyp-build').resolve(${JSON.stringify(pkg)})`], {
    cwd: app, env, encoding: 'utf8',
  });
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), path.join(fs.realpathSync(pkg), 'prebuilds', PREBUILD, 'celery-pulse-native.musl.node'));
});

test('on a libc with no prebuild the install tries a source build, and its failure does not fail the install', { skip, timeout: 600000 }, () => {
  const { tarball } = pack();
  const { app, env, result, called, pkg } = install('app-other-libc', tarball, { LIBC: 'uclibc' });
  assert.equal(result.status, 0, `npm install failed\n${result.stdout}\n${result.stderr}`);
  assert.notEqual(called, '', 'no source build was attempted');
  const child = spawnSync(process.execPath, ['-e', `
    try { require('node-gyp-build')(${JSON.stringify(pkg)}); console.log('loaded'); }
    catch (error) { console.log('refused: ' + error.message); }
  `], { cwd: app, env, encoding: 'utf8' });
  assert.match(child.stdout, /^refused: .*libc=uclibc/);
});
