'use strict';
// The JavaScript stack in the stall diagnosis (native strategy): while a
// child's loop is stuck, its record, its stderr block and the CLI name the
// function, file, line and column it is stuck in; outside JavaScript the
// record says why there is no stack; a long stall refreshes it; lastStall and
// previous keep the top frames; a worker thread's pulse reports that
// worker's frames; a TypeScript worker's frames map to its .ts source.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, STRATEGY, startPulse, tmpDir, sleep, waitFor, readRecord } = require('./helpers');
const { runScript, check } = require('./workers');

const BIN = path.join(PKG, 'bin', 'celery-pulse-native.js');
const native = STRATEGY === 'native';
// Emulated rows of the matrix (qemu) run everything several times slower.
const SLOW = process.env.PULSE_MATRIX_LAUNCHER ? 4 : 1;
const { loadStack } = require('../dist/native/stack');
const available = loadStack();
const skip = !native ? 'the stack needs the native strategy (the worker pass checks the reason instead)'
  : 'unavailable' in available ? `no stack support here: ${available.unavailable}` : false;

/** Writes a child script whose lines the tests can point at; returns its path. */
function script(dir, name, source) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, source);
  return file;
}

/** 1-based line and column of `needle` on the line holding `mark`. */
function position(file, mark, needle = mark) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => l.includes(mark));
  assert.ok(index >= 0, `${mark} not in ${file}`);
  return { line: index + 1, column: lines[index].indexOf(needle) + 1, text: lines[index] };
}

const PRELUDE = (file, options = {}) => `'use strict';
const p = require(${JSON.stringify(PKG)}).start(${JSON.stringify({ file, interval: 0.1, maxStall: 0.5, strategy: STRATEGY, ...options })});
`;

async function stallRecord(file, predicate = () => true, timeoutMs = 8000) {
  return waitFor(() => {
    try {
      const r = readRecord(file);
      return r.state === 'stalled' && r.thread && predicate(r) ? r : null;
    } catch {
      return null;
    }
  }, timeoutMs);
}

/**
 * Every stall record of `file` with a new stackAt, polled until `done`
 * settles: the list starts with the stall's first stack however slowly the
 * test's other steps run (a stackAt stays on the record until the next one).
 */
async function stackTimes(file, done) {
  const seen = [];
  let over = false;
  const end = () => { over = true; };
  done.then(end, end);
  while (!over) {
    try {
      const r = readRecord(file);
      if (r.state === 'stalled' && Array.isArray(r.stack) && r.stackAt && r.stackAt !== seen.at(-1)?.stackAt) seen.push(r);
    } catch {
      // between writes
    }
    await sleep(25);
  }
  return seen;
}

function cli(args, options = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000, ...options });
}

test('a busy loop three calls deep: the record, the stderr block, status and check name the frames', { skip }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  // The first record and the stderr block need the first capture, which waits
  // at most interval / 2 for the stuck thread: 50 ms at 0.1 s was once too
  // short under qemu beside another row (stack null). Emulated: 0.4 s (200 ms).
  const timing = SLOW > 1 ? { interval: 0.4, maxStall: 2 } : {};
  const file = script(dir, 'tasks.js', `${PRELUDE(health, timing)}
function crunch(ms) { const end = Date.now() + ms; let n = 0; while (Date.now() < end) n++; return n; }
function processJob(ms) { return crunch(ms); }
function runQueue() { return processJob(${4000 * SLOW}); }
setTimeout(() => { console.log('blocking'); runQueue(); setTimeout(() => p.stop(), 500); }, 300);
`);
  const c = runScript(t, file);
  await c.waitForLine(/^blocking$/);
  const r = await stallRecord(health);
  const loop = position(file, 'function crunch', 'while');
  const inProcess = position(file, 'function processJob', 'crunch(ms)');
  const inRun = position(file, 'function runQueue', 'processJob(');
  assert.deepEqual(r.stack.slice(0, 3).map((f) => f.function), ['crunch', 'processJob', 'runQueue'], JSON.stringify(r.stack));
  for (const f of r.stack.slice(0, 3)) assert.equal(f.file, file);
  assert.equal(r.stack[0].line, loop.line);
  assert.ok(r.stack[0].column >= loop.column && r.stack[0].column <= loop.text.length, `crunch at column ${r.stack[0].column}`);
  assert.deepEqual([r.stack[1].line, r.stack[1].column], [inProcess.line, inProcess.column]);
  assert.deepEqual([r.stack[2].line, r.stack[2].column], [inRun.line, inRun.column]);
  assert.ok(r.stack.length <= 32);
  // Taken at the deadline that wrote the record (a few ms after its updatedAt, the deadline's time).
  assert.ok(Date.parse(r.stackAt) >= Date.parse(r.stalledSince) && Date.parse(r.stackAt) <= Date.parse(r.updatedAt) + 1000,
    `stackAt ${r.stackAt}, stalledSince ${r.stalledSince}, updatedAt ${r.updatedAt}`);
  assert.equal(r.stackUnavailable, undefined);
  const top = `at crunch (${file}:${r.stack[0].line}:${r.stack[0].column})`;
  // Shaped like a Node stack trace, in the block written at the first withheld
  // deadline (before the record, but its pipe may be read later).
  await waitFor(() => c.output().stderr.includes(`\n    ${top}\n`), 5000).catch(() => {});
  assert.ok(c.output().stderr.includes(`\n    ${top}\n    at processJob (${file}:${inProcess.line}:${inProcess.column})\n`), c.output().stderr);
  const status = cli(['status', '--file', health, '--max-age', '0.4']);
  assert.ok(status.stdout.includes(`stack ${' '.repeat(7)}${top}\n`), status.stdout);
  assert.match(status.stdout, /^stack at +\S+Z \(/m);
  // Once the last beat is older than the probe's max age (the block lasts 4 s):
  await waitFor(() => Date.now() - fs.statSync(health).mtimeMs > 600, 3000);
  const line = check(['--file', health], 0.4);
  assert.equal(line.status, 1, line.stdout);
  assert.ok(line.stdout.includes(`loop silent for`) && line.stdout.includes(` in crunch (${file}:${r.stack[0].line}:`), line.stdout);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
});

test('a stall inside pulse.track(): the record keeps the package\'s own frames, marked; the block, status and check show none', { skip }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  const file = script(dir, 'jobs.js', `${PRELUDE(health)}
function crunch(ms) { const end = Date.now() + ms; let n = 0; while (Date.now() < end) n++; return n; }
function handle() { return p.track('job crunch#1', () => crunch(${4000 * SLOW})); }
setTimeout(() => { console.log('blocking'); handle(); setTimeout(() => p.stop(), 500); }, 300);
`);
  const own = path.join(PKG, 'dist') + path.sep;
  const c = runScript(t, file);
  await c.waitForLine(/^blocking$/);
  // The record with its stack (on a loaded or emulated host the first one may
  // say the stack did not come in time).
  const r = await stallRecord(health, (rec) => Array.isArray(rec.stack), 8000 * SLOW);
  const internal = r.stack.filter((f) => f.internal === true);
  assert.ok(internal.length > 0, `the track() wrapper's frames are in the record: ${JSON.stringify(r.stack)}`);
  for (const f of r.stack) assert.equal(f.internal === true, f.file.startsWith(own), JSON.stringify(f));
  assert.equal(r.stack[0].function, 'crunch');
  const user = r.stack.filter((f) => f.internal !== true).map((f) => f.function);
  assert.deepEqual(user.slice(0, 3), ['crunch', '<anonymous>', 'handle'], JSON.stringify(r.stack));
  await waitFor(() => /^ {4}thread /m.test(c.output().stderr), 5000).catch(() => {});
  const block = c.output().stderr;
  assert.match(block, /^ {4}at handle \(/m);
  assert.ok(!block.includes(own), `the block shows no frame of the package's own:\n${block}`);
  const status = cli(['status', '--file', health, '--max-age', '0.4']);
  assert.match(status.stdout, /at handle \(/);
  assert.ok(!status.stdout.includes(own), status.stdout);
  await waitFor(() => Date.now() - fs.statSync(health).mtimeMs > 600, 3000);
  const line = check(['--file', health], 0.4);
  assert.equal(line.status, 1, line.stdout);
  assert.ok(line.stdout.includes(` in crunch (${file}:`) && !line.stdout.includes(own), line.stdout);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
  // lastStall's top frames are the user's too.
  const after = readRecord(health);
  assert.ok(after.lastStall.stack.every((f) => f.internal !== true), JSON.stringify(after.lastStall.stack));
});

test('outside JavaScript (execSync): stack null with the reason; the late interrupt shows in no later record', { skip }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  const file = script(dir, 'shell.js', `${PRELUDE(health)}
const cp = require('node:child_process');
function afterwards() { const end = Date.now() + 1500; while (Date.now() < end); }
// sleep gets only PATH: a sanitizer runtime preloaded here must not follow it.
setTimeout(() => { console.log('blocking'); cp.execSync('sleep 3', { env: { PATH: process.env.PATH } }); afterwards(); setTimeout(() => p.stop(), 500); }, 300);
`);
  const c = runScript(t, file);
  const seen = [];
  const poll = setInterval(() => {
    try {
      seen.push(readRecord(health));
    } catch { /* mid-rename */ }
  }, 25);
  t.after(() => clearInterval(poll));
  await c.waitForLine(/^blocking$/);
  const r = await stallRecord(health);
  assert.equal(r.stack, null);
  assert.equal(r.stackAt, null);
  assert.match(r.stackUnavailable, /outside JavaScript .*no stack within \d+ ms/);
  assert.equal(r.thread.state, 'sleeping');
  await waitFor(() => /\(no JavaScript stack: /.test(c.output().stderr), 5000).catch(() => {});
  assert.match(c.output().stderr, /\(no JavaScript stack: the thread is outside JavaScript/);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
  clearInterval(poll);
  // afterwards() stalls the loop again, a second stall: its frames are its own,
  // and no record ever shows a frame of the first stall's late interrupt.
  for (const rec of seen) {
    for (const f of rec.stack ?? []) assert.notEqual(f.function, 'execSync', JSON.stringify(rec));
    // lastStall may keep the stack the pending request read as the loop came
    // back (marked as taken at the end), never one from during the stall.
    if (rec.lastStall && rec.lastStall.since === r.stalledSince && rec.lastStall.stack !== null) {
      assert.equal(rec.lastStall.stackTakenAt, 'end', JSON.stringify(rec.lastStall));
    }
  }
  const final = readRecord(health);
  assert.equal(final.state, 'stopped');
});

test('a long stall refreshes stackAt; lastStall and previous keep the top frames', { skip, timeout: 60000 }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  const killed = path.join(dir, 'killed');
  const file = script(dir, 'long.js', `${PRELUDE(health)}
function grind(ms) { const end = Date.now() + ms; while (Date.now() < end); }
function job() { grind(${11500 + (SLOW - 1) * 700}); }
setTimeout(() => { console.log('blocking'); job(); setTimeout(() => p.stop(), 500); }, 300);
`);
  const dead = script(dir, 'dead.js', `${PRELUDE(killed)}
function forever() { for (;;); }
function task() { forever(); }
setTimeout(() => { console.log('blocking'); task(); }, 300);
`);
  const c = runScript(t, file);
  const k = runScript(t, dead);
  await Promise.all([c.waitForLine(/^blocking$/), k.waitForLine(/^blocking$/)]);
  const stacks = stackTimes(health, c.exited);
  // previous: the killed process's top frames, kept by the next one on its file.
  const stuck = await stallRecord(killed, (r) => Array.isArray(r.stack));
  k.child.kill('SIGKILL');
  await k.exited;
  const next = startPulse({ file: killed, interval: 60 });
  const fresh = readRecord(killed);
  next.stop();
  assert.deepEqual(fresh.previous.stack.map((f) => f.function).slice(0, 2), ['forever', 'task']);
  assert.ok(fresh.previous.stack.length <= 5);
  assert.deepEqual(fresh.previous.stack, stuck.stack.slice(0, 5));

  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
  // Taken again every max(interval, 5 s): two refreshes within the stall.
  const seen = await stacks;
  const times = seen.map((r) => Date.parse(r.stackAt));
  assert.ok(seen.length >= 3, `stackAt values: ${seen.map((r) => r.stackAt)}`);
  for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 4900, `stackAt values: ${seen.map((r) => r.stackAt)}`);
  for (const r of seen) assert.deepEqual(r.stack.slice(0, 2).map((f) => f.function), ['grind', 'job']);
  const done = readRecord(health);
  assert.deepEqual(done.lastStall.stack.slice(0, 2).map((f) => f.function), ['grind', 'job']);
  assert.ok(done.lastStall.stack.length <= 5);
  assert.ok(done.lastStall.durationMs >= 11000, String(done.lastStall.durationMs));
});

test('a stuck worker thread\'s pulse reports that worker\'s frames; 20 stuck workers terminated mid-capture exit cleanly', { skip }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  const file = script(dir, 'pool.js', `'use strict';
const { Worker, isMainThread, workerData } = require('node:worker_threads');
const pulse = require(${JSON.stringify(PKG)});
if (isMainThread) {
  const w = new Worker(__filename, { workerData: { file: ${JSON.stringify(health)}, stuck: true } });
  w.on('message', () => console.log('blocking'));
  setTimeout(() => {
    w.terminate();
    // Terminated while their heartbeat threads may be waiting for a stack.
    const many = Array.from({ length: 20 }, (_, i) => new Worker(__filename, { workerData: { file: ${JSON.stringify(path.join(dir, 'many-'))} + i, stuck: true } }));
    let n = 0;
    for (const m of many) m.on('message', () => setTimeout(() => m.terminate(), (++n % 5) * 40));
  }, 2500);
} else {
  const p = pulse.start({ file: workerData.file, interval: 0.05, maxStall: 0.1, strategy: 'native', logStalls: false });
  function workerLoop() { for (;;); }
  function inWorker() { require('node:worker_threads').parentPort.postMessage('go'); workerLoop(); }
  setTimeout(inWorker, 100);
}
`);
  const c = runScript(t, file);
  await c.waitForLine(/^blocking$/);
  const r = await stallRecord(health, (rec) => Array.isArray(rec.stack));
  assert.deepEqual(r.stack.slice(0, 2).map((f) => f.function), ['workerLoop', 'inWorker']);
  assert.equal(r.stack[0].file, file);
  assert.notEqual(r.threadId, 0);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
});

test('a TypeScript worker compiled with a source map: status shows the .ts position', { skip }, async (t) => {
  const dir = tmpDir(t);
  fs.mkdirSync(path.join(dir, 'src'));
  const health = path.join(dir, 'health');
  const ts = path.join(dir, 'src', 'tasks.ts');
  fs.writeFileSync(ts, `const p = require(${JSON.stringify(PKG)}).start({ file: ${JSON.stringify(health)}, interval: 0.1, maxStall: 0.5, strategy: 'native' });

interface Job { ms: number }

function crunch(job: Job): number {
  const end: number = Date.now() + job.ms;
  let n: number = 0;
  while (Date.now() < end) n++;
  return n;
}

setTimeout(() => { console.log('blocking'); crunch({ ms: 4000 }); setTimeout(() => p.stop(), 300); }, 300);
`);
  const tsc = require.resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '--sourceMap', '--outDir', path.join(dir, 'dist'), '--rootDir', path.join(dir, 'src'),
    '--target', 'es2022', '--module', 'commonjs', '--types', 'node', '--typeRoots', path.join(PKG, 'node_modules', '@types'), ts], { cwd: dir, stdio: 'pipe' });
  const js = path.join(dir, 'dist', 'tasks.js');
  assert.ok(fs.existsSync(`${js}.map`));
  const c = runScript(t, js);
  await c.waitForLine(/^blocking$/);
  const r = await stallRecord(health, (rec) => Array.isArray(rec.stack));
  assert.equal(r.stack[0].function, 'crunch');
  assert.equal(r.stack[0].file, js);
  const status = cli(['status', '--file', health, '--max-age', '0.4'], { cwd: dir });
  const loop = position(ts, 'while (Date.now()');
  const shown = new RegExp(`at crunch \\(${js.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+\\) \\[src/tasks\\.ts:${loop.line}:(\\d+)\\]`);
  const m = shown.exec(status.stdout);
  assert.ok(m, status.stdout);
  assert.ok(Number(m[1]) >= loop.column && Number(m[1]) <= loop.text.length + 1, `column ${m[1]}`);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
});

test('the worker strategy says why its records carry no stack', { skip: native ? 'native pass' : false }, async (t) => {
  const dir = tmpDir(t);
  const health = path.join(dir, 'health');
  const file = script(dir, 'w.js', `${PRELUDE(health)}
setTimeout(() => { console.log('blocking'); const end = Date.now() + 1500; while (Date.now() < end); setTimeout(() => p.stop(), 300); }, 300);
`);
  const c = runScript(t, file);
  await c.waitForLine(/^blocking$/);
  const r = await stallRecord(health);
  assert.equal(r.stack, null);
  assert.match(r.stackUnavailable, /"worker" strategy/);
  assert.deepEqual(await c.exited, { code: 0, signal: null }, c.output().stderr);
});
