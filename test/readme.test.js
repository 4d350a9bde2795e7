'use strict';
// The commands of README.md and docs/*.md, run as written (test/readme.js
// describes the markers), so the documentation cannot drift from the package. Docker and Kubernetes
// cannot run here: their worker command, environment and probe commands are
// extracted and run in a sandbox where /app and /tmp stand for the container's.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, sleep, assertExit } = require('./helpers');
const { sandbox, cleanEnv, run, startChild } = require('./sandbox');
const readme = require('./readme');

// systemd, pm2, docker run and compose: run by test/supervisors/*.test.js under the real ones.
const MARKERS = ['run', 'run, exits 1', 'dockerfile', 'kubernetes', 'kubernetes-http', 'usage', 'demo', 'example', 'systemd', 'pm2', 'docker run', 'compose'];
const RUNNABLE = new Set(['sh', 'bash', 'shell', 'console', 'dockerfile', 'yaml', 'yml']);
// Blocks that are not run here, each with where it is covered instead.
const NOT_RUN = [
  [/^npm install celery-pulse-native\n$/, 'needs the registry; CI installs this checkout with npm ci'],
  [/^npm install\b.*\nnpm test\b.*\n$/, 'the development loop itself: .ci/run runs npm ci and npm test'],
  [/^npm run prebuild\b[^]*\bPULSE_INSTALL_TEST=1 node --test test\/install\.test\.js\b.*\n$/, 'prebuilds, matrix, install test: slow and need apt packages; .ci/run runs each'],
];
const SHELL_PROBE = /\[ \$\(\(\$\(date \+%s\) - \$\(stat -c %Y ([^)\s]+)\)\)\) -lt (\d+) \]/g;

function touchAgo(file, ago) {
  const result = spawnSync('touch', ['-d', ago, file], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
}

/** Output lines compared by shape: times, numbers, the host name and the strategy under test vary. */
function shape(line) {
  return line
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, '<time>')
    .replace(/ on [\w.-]+, thread/g, ' on <host>, thread')
    .replace(/strategy \w+/g, 'strategy <strategy>')
    .replace(/\d+(\.\d+)?/g, '<n>')
    .replace(/\s+/g, ' ')
    .trim();
}

test('every shell, Dockerfile and Kubernetes block in the README and docs/ is run by a test', () => {
  const unmarked = [];
  for (const block of readme.blocks()) {
    if (block.marker !== undefined) {
      assert.ok(MARKERS.includes(block.marker), `${block.where}: unknown marker "test: ${block.marker}"`);
      continue;
    }
    if (!RUNNABLE.has(block.lang)) continue;
    if (NOT_RUN.some(([pattern]) => pattern.test(block.body))) continue;
    unmarked.push(`${block.where}: ${block.body.split('\n')[0]}`);
  }
  assert.deepEqual(unmarked, [], 'mark these blocks (see test/readme.js) so a test runs them');
  const marked = readme.blocks().filter((b) => b.marker !== undefined);
  for (const marker of MARKERS) assert.ok(marked.some((b) => b.marker === marker), `no block in README.md or docs/ marked "test: ${marker}"`);
});

test('an untagged shell, Dockerfile or YAML block is caught, and a tagged one is not', () => {
  // The check above, on a page made up here: it must see what it exists to see.
  const page = ['```sh', 'echo untagged', '```', '', '<!-- test: run -->', '```sh', 'echo tagged', '```', '', '```dockerfile', 'FROM scratch', '```', '', '```yaml', 'a: 1', '```', '', '```js', 'x()', '```', ''].join('\n');
  const found = readme.blocks(page);
  assert.deepEqual(found.map((b) => [b.lang, b.marker]), [['sh', undefined], ['sh', 'run'], ['dockerfile', undefined], ['yaml', undefined], ['js', undefined]]);
  const untagged = found.filter((b) => b.marker === undefined && RUNNABLE.has(b.lang)).map((b) => b.lang);
  assert.deepEqual(untagged, ['sh', 'dockerfile', 'yaml']);
});

test('the README is short and links every docs page; each page opens with its two-line summary', () => {
  const text = readme.readmeText();
  const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
  assert.ok(lines <= 320, `README.md has ${lines} lines, more than 320: move the reference into docs/`);
  const pages = readme.docFiles().slice(1);
  for (const page of ['configuration', 'operations', 'diagnosis', 'integrations', 'platforms', 'internals', 'benchmarks', 'security']) {
    assert.ok(pages.includes(`docs/${page}.md`), `docs/${page}.md is missing`);
  }
  for (const page of pages) {
    assert.ok(text.includes(`](${page})`), `README.md does not link ${page}`);
    const body = fs.readFileSync(path.join(PKG, page), 'utf8').split('\n');
    assert.match(body[0], /^# \S/, `${page} starts with its title`);
    assert.equal(body[1], '', `${page}: a blank line after the title`);
    const summary = [];
    for (let i = 2; i < body.length && body[i].trim() !== ''; i++) summary.push(body[i]);
    assert.equal(summary.length, 2, `${page}: the paragraph under the title is ${summary.length} lines, not 2`);
    assert.ok(summary.every((l) => !/^(#|```|<!--|[-*|] |\d+\. )/.test(l)), `${page}: the summary is a plain paragraph`);
  }
});

test('package.json\'s version is the newest one in CHANGELOG.md', () => {
  const top = /^## (\d+\.\d+\.\d+)\b/m.exec(fs.readFileSync(path.join(PKG, 'CHANGELOG.md'), 'utf8'));
  assert.ok(top, 'CHANGELOG.md has a "## X.Y.Z" heading');
  assert.equal(require(path.join(PKG, 'package.json')).version, top[1]);
});

test('docs/architecture.svg is what docs/architecture.js writes', () => {
  const { render, OUT } = require('../docs/architecture.js');
  assert.equal(fs.readFileSync(OUT, 'utf8'), render(), 'run node docs/architecture.js and commit docs/architecture.svg');
  assert.match(fs.readFileSync(path.join(PKG, 'docs', 'internals.md'), 'utf8'), /\]\(architecture\.svg\)/, 'docs/internals.md shows the picture');
});

test('the shell sessions of the README and docs/ run and print what they show', async (t) => {
  const box = sandbox(t);
  const sessions = readme.blocks().filter((b) => b.marker === 'run' || b.marker === 'run, exits 1');
  for (const block of sessions) {
    const script = box.map(block.body);
    const result = await run(['sh', '-e', '-c', script], { cwd: box.app, env: cleanEnv(), timeout: 60000 });
    const expected = block.marker === 'run' ? 0 : 1;
    assert.equal(result.status, expected, `${block.where} exited ${result.status}, expected ${expected}\n${result.stdout}${result.stderr}`);
    // Full-line comments show output; each must appear, by shape.
    const printed = new Set(`${result.stdout}\n${result.stderr}`.split('\n').map(shape));
    for (const comment of script.split('\n').filter((line) => line.startsWith('# '))) {
      const line = comment.slice(2);
      assert.ok(printed.has(shape(line)), `${block.where}: nothing printed like\n  ${line}\noutput:\n${result.stdout}${result.stderr}`);
    }
  }
});

test('the documentation\'s plain shell probe passes on a fresh file and fails on a stale or missing one', async (t) => {
  const box = sandbox(t);
  const probes = [...new Set([...readme.docsText().matchAll(SHELL_PROBE)].map((m) => m[0]))];
  assert.ok(probes.length >= 2, 'the README and docs/ show the shell probe');
  for (const probe of probes) {
    const [, file, limit] = new RegExp(SHELL_PROBE.source).exec(probe);
    const mapped = box.map(file);
    assert.notEqual(mapped, file, `${file} is not under /tmp or /app`);
    fs.mkdirSync(path.dirname(mapped), { recursive: true });
    fs.writeFileSync(mapped, '');
    const sh = () => run(['sh', '-c', box.map(probe)], { env: cleanEnv() });
    const n = Number(limit);
    assertExit(await sh(), 0);
    touchAgo(mapped, `${n - 3} seconds ago`);
    assertExit(await sh(), 0);
    touchAgo(mapped, `${n + 3} seconds ago`);
    assertExit(await sh(), 1);
    touchAgo(mapped, '1 hour ago');
    assertExit(await sh(), 1);
    fs.rmSync(mapped);
    const missing = await sh();
    assert.notEqual(missing.status, 0, `${probe} passed on a missing file`);
  }
});

/**
 * Runs a container's worker as the README configures it, then its probes:
 * all pass while it beats (without touching the file themselves), all fail
 * once it is killed and its file is old, and once the file is gone.
 */
async function probeContainer(t, { cwd, env, command, probes, timeoutMs }) {
  const file = env.CELERY_PULSE_HEALTHCHECK_FILE;
  assert.ok(file, 'the README sets CELERY_PULSE_HEALTHCHECK_FILE');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // The recipes' init (`tini --`) is run by the engine test (test/engine/); here
  // the worker is run without it, so that its pid is the one the record names.
  const withoutInit = /(^|\/)tini$/.test(command[0]) && command[1] === '--' ? command.slice(2) : command;
  const argv = withoutInit[0] === 'node' ? [process.execPath, ...withoutInit.slice(1)] : withoutInit;
  const worker = startChild(argv, { cwd, env });
  t.after(() => worker.kill('SIGKILL'));
  const until = Date.now() + 15000;
  const beating = () => {
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')).pid === worker.pid;
    } catch {
      return false;
    }
  };
  while (!beating()) {
    assert.ok(Date.now() < until, `the worker never pulsed ${file}: ${worker.errors}`);
    await sleep(20);
  }
  const runProbe = (probe) => run(probe.argv, { cwd, env, timeout: 30000 });
  for (const probe of probes) {
    const result = await runProbe(probe);
    assert.equal(result.status, 0, `${probe.name} failed on a beating worker\n${result.stdout}${result.stderr}`);
    assert.ok(result.ms < timeoutMs, `${probe.name} took ${result.ms} ms, more than its ${timeoutMs} ms timeout`);
  }
  const record = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(record.pid, worker.pid, 'a probe rewrote the record (it must never pulse)');
  assert.equal(record.state, 'running');

  worker.kill('SIGKILL');
  await worker.exited;
  // The oldest a healthy worker's file gets is one interval, plus a late beat:
  // every probe's threshold must let that pass.
  const interval = Number(env.CELERY_PULSE_HEARTBEAT_INTERVAL ?? 60);
  touchAgo(file, `${interval + 1} seconds ago`);
  for (const probe of probes) {
    const result = await runProbe(probe);
    assert.equal(result.status, 0, `${probe.name} fails a file one interval (${interval} s) old\n${result.stdout}${result.stderr}`);
  }
  touchAgo(file, '5 minutes ago');
  for (const probe of probes) {
    const result = await runProbe(probe);
    assert.equal(result.status, 1, `${probe.name} on a 5 minutes old file: exit ${result.status}\n${result.stdout}${result.stderr}`);
    // The worker was killed: its pid is gone, which the line says.
    if (probe.cli) assert.match(result.stdout, /^gone: .* the record says running, but its process is gone/);
  }
  fs.rmSync(file);
  for (const probe of probes) {
    const result = await runProbe(probe);
    assert.notEqual(result.status, 0, `${probe.name} passed on a missing file`);
    if (probe.cli) assert.match(result.stdout, /^missing: /);
  }
}

test('Docker: the README image\'s worker beats, and both HEALTHCHECK forms judge it', async (t) => {
  const box = sandbox(t);
  const instructions = readme
    .blocks()
    .filter((b) => b.marker === 'dockerfile')
    .flatMap((b) => readme.dockerInstructions(b.body));
  let env = {};
  let workdir = '/';
  let command;
  const probes = [];
  for (const { instruction, args } of instructions) {
    if (instruction === 'ENV') env = { ...env, ...readme.dockerEnv(args) };
    if (instruction === 'WORKDIR') workdir = args;
    if (instruction === 'CMD') command = readme.dockerCommand(args);
    if (instruction === 'HEALTHCHECK') {
      const { options, argv } = readme.dockerHealthcheck(args);
      probes.push({ name: `HEALTHCHECK ${argv.join(' ')}`, argv: argv.map(box.map), cli: /celery-pulse-native$/.test(argv[0]), options });
    }
  }
  assert.ok(command, 'the README Dockerfile has a CMD');
  assert.ok(probes.some((p) => p.cli) && probes.some((p) => !p.cli), 'both HEALTHCHECK forms are shown');
  assert.match(env.NODE_OPTIONS ?? '', /--require celery-pulse-native\/register/);
  const timeouts = probes.map((p) => Number.parseFloat(p.options.timeout ?? '30s') * 1000);
  const mapped = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, box.map(v)]));
  await probeContainer(t, {
    cwd: box.map(workdir),
    env: cleanEnv(mapped),
    command: command.map(box.map),
    probes,
    timeoutMs: Math.min(...timeouts),
  });
});

test('Kubernetes: the README Deployment\'s worker beats, and its exec probes judge it', async (t) => {
  const box = sandbox(t);
  const parts = readme.blocks().filter((b) => b.marker === 'kubernetes').map((b) => readme.kubernetesParts(b.body));
  const main = parts.find((p) => p.commands.length > 0);
  assert.ok(main, 'the README Deployment has a container command');
  const probes = parts.flatMap((p) =>
    p.probes.map(({ probe, argv }) => ({ name: `${probe} ${argv.join(' ')}`, argv: argv.map(box.map), cli: /celery-pulse-native$/.test(argv[0]) })),
  );
  assert.ok(probes.some((p) => p.name.startsWith('startupProbe')), 'a startupProbe is shown');
  assert.ok(probes.some((p) => p.name.startsWith('livenessProbe') && p.cli), 'a livenessProbe with the CLI is shown');
  const mapped = Object.fromEntries(Object.entries(main.env).map(([k, v]) => [k, box.map(v)]));
  await probeContainer(t, {
    cwd: box.map(main.workingDir ?? '/app'),
    env: cleanEnv(mapped),
    command: main.commands[0].map(box.map),
    probes,
    timeoutMs: 5000,
  });
});

test('the usage shown in the documentation is the command\'s', async () => {
  const { USAGE } = require('../dist/cli/cli.js');
  const shown = readme.blocks().filter((b) => b.marker === 'usage');
  assert.equal(shown.length, 1);
  assert.equal(shown[0].body, USAGE);
});
