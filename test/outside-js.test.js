'use strict';
// Outside JavaScript (DESIGN.md): while a child's loop is stuck in native code
// or asleep in a system call, its record, its stderr block, check and status
// say where: the machine stack (nativeStack, native strategy) and what the
// descriptor leads to (waitingFor, both strategies). The interrupted calls
// still give their right results, 100 captures in a row; nativeStack: false
// sends no signal at all.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PKG, STRATEGY, SANITIZED, tmpDir, waitFor, readRecord } = require('./helpers');
const { runScript, check } = require('./workers');
const { sqliteModule } = require('./sqlite');

const BIN = path.join(PKG, 'bin', 'celery-pulse-native.js');
const NATIVE = STRATEGY === 'native';
// Emulated rows of the matrix (qemu) run everything several times slower.
// ThreadSanitizer defers a signal until the thread enters its runtime: a
// capture may find no answer within its wait; then the record says so.
const TSAN = /libtsan/.test(process.env.LD_PRELOAD ?? '');
const SLOW = process.env.PULSE_MATRIX_LAUNCHER || TSAN ? 4 : 1;
/** A record with native frames, or (under TSan) the reason it has none. */
const nativeOrReason = (rec) => rec.nativeStack || (TSAN && /did not answer/.test(rec.nativeStackUnavailable ?? ''));
/** Any native frame, as check and status name one: "in fn (module)". */
const ANY_FRAME = /in .+ \([\w.+-]+\)/;
// Under a preloaded sanitizer runtime, its interceptors (which the native
// code calls, and which call into libc through pointers no unwinder can
// check) are where a sample often lands: frames there, or in the libc code
// they call, count as the stuck code's.
const inRuntime = (frames) => SANITIZED && frames.some((f) => /^(lib[at]san|libc)\.so/.test(f.module));
// Shell children get only PATH, so a preloaded sanitizer runtime does not follow them.
const SHELL_ENV = JSON.stringify({ PATH: process.env.PATH });

/**
 * Runs `body` in a child with a pulse `p` on `file` (interval 0.1 s, maxStall
 * 0.5 s); the child prints "blocking" just before its stuck phase and
 * "captures N" (nativeStack signals sent) at its end.
 */
function child(t, file, body, { options = {}, env = {}, prelude = '' } = {}) {
  const dir = path.dirname(file);
  const script = path.join(dir, `child-${Math.random().toString(36).slice(2)}.js`);
  const settings = { file, interval: 0.1, maxStall: 0.5, strategy: STRATEGY, ...options };
  fs.writeFileSync(script, `'use strict';
const pulse = require(${JSON.stringify(PKG)});
const cp = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const zlib = require('node:zlib');
${prelude}
const SHELL_ENV = ${SHELL_ENV};
const p = pulse.start(${JSON.stringify(settings)});
const captures = () => ${NATIVE ? `require(${JSON.stringify(path.join(PKG, 'dist', 'native', 'loader.js'))}).loadNative().nativeStackCaptures()` : '0'};
const finish = () => setTimeout(() => {
  console.log('lastStall ' + JSON.stringify(p.status().lastStall));
  console.log('captures ' + captures());
  p.stop();
}, 400);
setTimeout(() => { ${body} }, 300);
`);
  return runScript(t, script, env);
}

/** The record once the heartbeat thread has diagnosed the stall (with `has` true). */
function stallRecord(file, has = () => true, timeoutMs = 15000 * SLOW) {
  return waitFor(() => {
    try {
      const r = readRecord(file);
      return r.state === 'stalled' && r.thread && has(r) ? r : null;
    } catch {
      return null; // between the look and a rename
    }
  }, timeoutMs, 20);
}

function cli(args) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
}

async function checkNames(file, pattern) {
  // The probe's max age below the stall's length: the check sees it stale.
  await waitFor(() => check(['--file', file], 0.4).status === 1, 5000 * SLOW, 50);
  const line = check(['--file', file], 0.4).stdout;
  assert.match(line, pattern, line);
  const status = cli(['status', '--file', file, '--max-age', '0.4']);
  assert.match(status.stdout, pattern, status.stdout);
  return status.stdout;
}

test('execSync of a child that never finishes: waitingFor names the child, its command and state', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const c = child(t, file, `console.log('blocking');
  let out;
  try { out = cp.execSync('sleep 30', { env: SHELL_ENV }).toString(); } catch (e) { out = 'failed ' + (e.signal || e.status); }
  console.log('exec ' + out);
  finish();`);
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file, (rec) => rec.waitingFor);
  const w = r.waitingFor;
  assert.equal(w.kind, 'child', JSON.stringify(w));
  assert.equal(w.command, 'sleep 30');
  assert.equal(w.state, 'sleeping');
  assert.ok(w.runningMs >= 0 && w.runningMs < 60000, JSON.stringify(w));
  // The pid is the sleep itself, a descendant of the stuck process.
  assert.equal(fs.readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(), 'sleep 30');
  assert.equal(r.thread.state, 'sleeping');
  const status = await checkNames(file, new RegExp(`waiting for child ${w.pid}: sleep 30`));
  assert.match(status, new RegExp(`^waiting for +child ${w.pid}: sleep 30$`, 'm'));
  assert.match(c.output().stderr, new RegExp(`^ {4}waiting for child ${w.pid}: sleep 30$`, 'm'));
  if (NATIVE) {
    assert.ok(Array.isArray(r.nativeStack) && r.nativeStack.length > 0, JSON.stringify(r));
    assert.ok(r.nativeStack.some((f) => /epoll|uv_run|uv__io_poll|SyncProcessRunner/.test(f.symbol ?? '')), JSON.stringify(r.nativeStack));
  } else {
    assert.equal(r.nativeStack, null);
    assert.match(r.nativeStackUnavailable, /"worker" strategy/);
  }
  // Ending the child ends the stall: the record keeps what it waited for.
  process.kill(w.pid, 'SIGKILL');
  // sh reports the killed sleep: 128 + SIGKILL.
  assert.equal(await c.waitForLine(/^exec /, 10000 * SLOW), 'exec failed 137');
  const last = JSON.parse((await c.waitForLine(/^lastStall /, 10000 * SLOW)).slice('lastStall '.length));
  assert.equal(last.waitingFor.pid, w.pid);
  await c.exited;
});

test('a FIFO read with a silent writer: waitingFor names the FIFO; the read still gets its bytes', async (t) => {
  const dir = tmpDir(t);
  const file = path.join(dir, 'health');
  const fifo = path.join(dir, 'jobs.fifo');
  assert.equal(spawnSync('mkfifo', [fifo], { env: { PATH: process.env.PATH } }).status, 0);
  // A writer that holds the FIFO open and says nothing (O_RDWR never blocks on Linux).
  const writer = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  t.after(() => { try { fs.closeSync(writer); } catch {} });
  const c = child(t, file, `console.log('blocking');
  const fd = fs.openSync(${JSON.stringify(fifo)}, 'r');
  const buf = Buffer.alloc(64);
  const n = fs.readSync(fd, buf, 0, 64, null);
  console.log('read ' + buf.subarray(0, n).toString());
  finish();`);
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file, (rec) => rec.waitingFor);
  assert.deepEqual(r.waitingFor, { kind: 'fifo', path: fifo });
  assert.equal(r.thread.syscall, 'read');
  await checkNames(file, new RegExp(`waiting for FIFO ${fifo.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  // nativeStack when V8 gave no stack (it may answer if the record caught the
  // thread on its way into the read).
  if (NATIVE && r.stack === null) {
    if (r.nativeStack !== null) assert.match(r.nativeStack[0].symbol ?? '', /read/, JSON.stringify(r));
    else assert.ok(nativeOrReason(r), JSON.stringify(r));
  }
  fs.writeSync(writer, 'ping');
  assert.equal(await c.waitForLine(/^read /, 10000 * SLOW), 'read ping');
  await c.exited;
});

test('pbkdf2Sync: nativeStack names a PBKDF2 or SHA function in node; the key is right', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const iterations = 5000000;
  const c = child(t, file, `console.log('blocking');
  const key = crypto.pbkdf2Sync('secret', 'salt', ${iterations}, 32, 'sha512').toString('hex');
  console.log('key ' + key);
  setTimeout(() => {
    console.log('lastStall ' + JSON.stringify(p.status().lastStall));
    p.stop();
    // The same key with no pulse.
    console.log('unpulsed ' + crypto.pbkdf2Sync('secret', 'salt', ${iterations}, 32, 'sha512').toString('hex'));
  }, 400);`);
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file, nativeOrReason);
  assert.equal(r.stack, null);
  assert.match(r.stackUnavailable, /outside JavaScript/);
  if (r.nativeStack !== null) {
    assert.ok(r.nativeStack.length >= 1 && r.nativeStack.length <= 16, JSON.stringify(r.nativeStack));
    assert.ok(r.nativeStack.some((f) => /pbkdf2|sha/i.test(f.symbol ?? '')) || inRuntime(r.nativeStack), JSON.stringify(r.nativeStack));
    const top = r.nativeStack[0];
    assert.ok(top.module === 'node' || /libcrypto|libc\.so/.test(top.module) || inRuntime([top]), JSON.stringify(top));
    assert.match(c.output().stderr, /^ {4}in .+ \([\w.+-]+\)$/m);
    // A later diagnosis (every 5 s) may name another frame of the same call.
    await checkNames(file, ANY_FRAME);
  }
  const key = (await c.waitForLine(/^key /, 60000 * SLOW)).slice(4);
  assert.equal((await c.waitForLine(/^unpulsed /, 60000 * SLOW)).slice(9), key);
  await c.exited;
  const last = JSON.parse((await c.waitForLine(/^lastStall /)).slice('lastStall '.length));
  if (!TSAN) assert.ok(last.nativeStack.length >= 1 && last.nativeStack.length <= 5, JSON.stringify(last));
});

test('a stall reached by a tail call, with no frame-pointer chain: nativeStack names the caller, whether it called directly or through a pointer', { skip: (!NATIVE && 'nativeStack is the native strategy\'s') || (process.arch !== 'x64' && 'the fixture is x86-64 assembly') }, async (t) => {
  // OpenSSL's CRYPTO_free ends with `jmp free`, and OpenSSL calls a
  // provider's free function through a pointer: a thread caught in free has
  // no frame of the function that jumped, and its caller's call does not
  // lead to free. The fixture builds both shapes (test/fixtures/tail-call.c).
  const dir = tmpDir(t);
  const addon = path.join(dir, 'tail-call.node');
  const include = path.join(path.dirname(process.execPath), '..', 'include', 'node');
  const cc = spawnSync('cc', ['-O2', '-fomit-frame-pointer', '-fPIC', '-shared', '-I', include, '-o', addon, path.join(__dirname, 'fixtures', 'tail-call.c'), '-lpthread'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  assert.equal(cc.status, 0, cc.stderr);
  for (const [indirect, caller] of [[false, 'pulse_fixture_caller'], [true, 'pulse_fixture_indirect_caller']]) {
    const file = path.join(dir, `health-${indirect}`);
    const c = child(t, file, `console.log('blocking');
    console.log('calls ' + require(${JSON.stringify(addon)}).spin(${3000 * SLOW}, ${indirect}));
    finish();`);
    await c.waitForLine(/^blocking$/, 30000 * SLOW);
    const r = await stallRecord(file, nativeOrReason);
    await c.exited;
    assert.equal(Number((await c.waitForLine(/^calls /)).slice(6)), 1);
    if (r.nativeStack === null) continue; // TSan: the spin never enters its runtime, so no answer
    const names = r.nativeStack.map((f) => f.symbol);
    assert.deepEqual(names.slice(0, 2), ['pulse_fixture_spin', caller], JSON.stringify(r.nativeStack));
    assert.equal(r.nativeStack[1].module, 'tail-call.node');
    assert.ok(!names.includes('pulse_fixture_shim'), JSON.stringify(r.nativeStack));
    // Past the fixture, the frames of the call into it (node or V8).
    assert.ok(r.nativeStack.length >= 3, JSON.stringify(r.nativeStack));
  }
});

test('brotliCompressSync: nativeStack names a Brotli function; the bytes round-trip', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const c = child(t, file, `
  // Text that compresses slowly at quality 11: a few seconds in one call.
  const input = Buffer.from(Array.from({ length: 600000 }, (_, i) => (i * 2654435761 % 1000003).toString(36)).join(' '));
  console.log('blocking');
  const packed = zlib.brotliCompressSync(input, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } });
  console.log('roundtrip ' + zlib.brotliDecompressSync(packed).equals(input) + ' ' + crypto.createHash('sha256').update(packed).digest('hex'));
  p.stop();
  const again = zlib.brotliCompressSync(input, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 } });
  console.log('unpulsed ' + crypto.createHash('sha256').update(again).digest('hex'));`);
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file, nativeOrReason);
  if (r.nativeStack !== null) {
    // Brotli's own functions, or a garbage collection V8 runs inside the
    // call (its frames then fill the innermost 16).
    assert.ok(r.nativeStack.some((f) => /brotli|^v8::internal::Heap::/i.test(f.symbol ?? '')) || inRuntime(r.nativeStack), JSON.stringify(r.nativeStack));
  }
  const line = await c.waitForLine(/^roundtrip /, 120000 * SLOW);
  const [, same, digest] = line.split(' ');
  assert.equal(same, 'true');
  assert.equal((await c.waitForLine(/^unpulsed /, 120000 * SLOW)).split(' ')[1], digest);
  await c.exited;
});

test('better-sqlite3: a long recursive query names better_sqlite3.node and a SQLite function; the count is right', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  const mod = sqliteModule();
  if (typeof mod !== 'string') {
    t.skip(mod.why);
    return;
  }
  const file = path.join(tmpDir(t), 'health');
  const query = 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000000) SELECT count(*) AS c, sum(i % 7) AS s FROM n';
  const c = child(t, file, `console.log('blocking');
  const row = db.prepare(${JSON.stringify(query)}).get();
  console.log('row ' + row.c + ' ' + row.s);
  finish();`, { prelude: `const db = new (require(${JSON.stringify(mod)}))(':memory:');` });
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file, nativeOrReason);
  if (r.nativeStack !== null) {
    assert.ok(r.nativeStack.some((f) => f.module === 'better_sqlite3.node') || inRuntime(r.nativeStack), JSON.stringify(r.nativeStack));
    assert.ok(r.nativeStack.some((f) => f.module === 'better_sqlite3.node' && /^sqlite3/.test(f.symbol ?? '')) || inRuntime(r.nativeStack), JSON.stringify(r.nativeStack));
    // The line names the innermost frame: SQLite's own, or the C library's
    // when the query is inside memcpy or malloc at that moment (seen on a
    // loaded host; the frames above it are in the record, checked above). A
    // later diagnosis (every 5 s) may name another frame of the same query.
    await checkNames(file, /in .+ \((better_sqlite3\.node|libc\.so[\w.]*|lib[at]san\.so[\w.]*)\)/);
  }
  // The same sum, counted here.
  let s = 0;
  for (let i = 1; i <= 30000000; i++) s += i % 7;
  assert.equal(await c.waitForLine(/^row /, 120000 * SLOW), `row 30000000 ${s}`);
  await c.exited;
});

const { loadStack } = require('../dist/native/stack');
const stackPiece = loadStack();
const lateSkip = !NATIVE ? 'the JavaScript stack needs the native strategy'
  : 'unavailable' in stackPiece ? `no stack support here: ${stackPiece.unavailable}`
  : stackPiece.apiVersion < 2 ? `the stack binary here (API ${stackPiece.apiVersion}) predates the stack after the fact`
  : false;

test('after a stall in native code, lastStall.stack names the JavaScript that made the call, taken at the end', { skip: lateSkip }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const c = child(t, file, `console.log('blocking');
  deriveKey();
  finish();`, { prelude: `function deriveKey() {
  return crypto.pbkdf2Sync('secret', 'salt', 3000000, 32, 'sha512');
}` });
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file);
  assert.equal(r.stack, null);
  const last = JSON.parse((await c.waitForLine(/^lastStall /, 60000 * SLOW)).slice('lastStall '.length));
  // The stack is taken again every 5 s of a stall: when the native call ends
  // just as that comes due (TSan beside two CPU hogs: a 5.7 s stall, caught
  // in the Buffer.from after the call), it is taken during the stall, still
  // naming the caller. A shorter stall must have it taken at the end.
  const refreshed = last.stackTakenAt === undefined && last.durationMs >= 5000;
  if (!refreshed) assert.equal(last.stackTakenAt, 'end', JSON.stringify(last));
  assert.ok(last.stack.length >= 1 && last.stack.length <= 5, JSON.stringify(last.stack));
  const frame = last.stack.find((f) => f.function === 'deriveKey');
  assert.ok(frame, JSON.stringify(last.stack));
  assert.match(frame.file, /child-.*\.js$/);
  // The prelude's second line of the script holds the call.
  assert.ok(frame.line > 1 && frame.column > 0, JSON.stringify(frame));
  await c.exited;
  const status = cli(['status', '--file', file]);
  assert.match(status.stdout, refreshed ? /^last stall +since .*; at /m : /^last stall +since .*; at .* \(taken as the stall ended\)$/m, status.stdout);
});

test('100 captures in a row during pbkdf2Sync, brotli, execSync (and better-sqlite3): every result as without them', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  const mod = sqliteModule();
  const dir = tmpDir(t);
  const script = path.join(dir, 'stress.js');
  fs.writeFileSync(script, `'use strict';
const binding = require(${JSON.stringify(path.join(PKG, 'dist', 'native', 'loader.js'))}).loadNative();
const crypto = require('node:crypto'), zlib = require('node:zlib'), cp = require('node:child_process');
const input = Buffer.from(Array.from({ length: 40000 }, (_, i) => (i * 2654435761 % 1000003).toString(36)).join(' '));
const cases = {
  pbkdf2: () => crypto.pbkdf2Sync('secret', 'salt', 20000, 32, 'sha512').toString('hex'),
  brotli: () => { const z = zlib.brotliCompressSync(input); return zlib.brotliDecompressSync(z).equals(input) + ':' + z.toString('base64'); },
  execSync: () => cp.execSync('echo one; sleep 0.02; echo two', { env: ${SHELL_ENV} }).toString(),
};
${typeof mod === 'string' ? `const db = new (require(${JSON.stringify(mod)}))(':memory:');
cases.sqlite = () => JSON.stringify(db.prepare('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT count(*) c, sum(i % 7) s FROM n').get());` : ''}
for (const [name, run] of Object.entries(cases)) {
  const expected = run();
  const stress = binding._nativeStackStress(100, 500);
  let runs = 0, wrong = 0;
  while (!stress.done()) { runs++; if (run() !== expected) wrong++; }
  const { sent, handlerNs } = stress.join();
  console.log(JSON.stringify({ name, runs, wrong, sent, answered: handlerNs.length }));
}
`);
  const c = runScript(t, script);
  const result = await c.exited;
  const { stdout, stderr } = c.output();
  assert.deepEqual(result, { code: 0, signal: null }, stderr);
  const rows = stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rows.length, typeof mod === 'string' ? 4 : 3, stdout);
  for (const row of rows) {
    assert.equal(row.wrong, 0, JSON.stringify(row));
    assert.equal(row.sent, 100, JSON.stringify(row));
    assert.ok(row.answered >= (TSAN ? 1 : 95), JSON.stringify(row));
    assert.ok(row.runs >= 1, JSON.stringify(row));
  }
});

test('nativeStack: false (option or CELERY_PULSE_NATIVE_STACK=0): no capture is attempted', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  for (const [options, env] of [[{ nativeStack: false }, {}], [{}, { CELERY_PULSE_NATIVE_STACK: '0' }], [{}, {}]]) {
    const file = path.join(tmpDir(t), 'health');
    const c = child(t, file, `console.log('blocking');
    crypto.pbkdf2Sync('secret', 'salt', 3000000, 32, 'sha512');
    finish();`, { options, env });
    await c.waitForLine(/^blocking$/, 30000 * SLOW);
    const r = await stallRecord(file);
    const captures = Number((await c.waitForLine(/^captures /, 60000 * SLOW)).split(' ')[1]);
    await c.exited;
    if (options.nativeStack === false || env.CELERY_PULSE_NATIVE_STACK === '0') {
      assert.equal(captures, 0);
      assert.equal(r.nativeStack, null);
    } else {
      assert.ok(captures >= 1, `captures ${captures}`);
    }
  }
});

test('a real-time signal that has a handler already is never taken over: the record says so', {
  skip: !NATIVE ? 'nativeStack is the native strategy\'s' : TSAN && 'the re-exec through sh with an ignored signal does not start under TSan\'s runtime',
}, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  // The child runs with signal 50 (a real-time one under glibc and musl) set
  // to "ignore" before Node starts, and the capture may take only that one.
  const c = child(t, file, `console.log('blocking');
  crypto.pbkdf2Sync('secret', 'salt', 3000000, 32, 'sha512');
  finish();`, {
    env: { CELERY_PULSE_TEST_NATIVE_SIGNAL: '50' },
    prelude: `if (!process.env.PULSE_WRAPPED) {
  const r = cp.spawnSync('sh', ['-c', 'trap "" 50; exec "$0" "$@"', process.execPath, __filename], { stdio: 'inherit', env: { ...process.env, PULSE_WRAPPED: '1' } });
  process.exit(r.status ?? 1);
}`,
  });
  await c.waitForLine(/^blocking$/, 30000 * SLOW);
  const r = await stallRecord(file);
  assert.equal(r.nativeStack, null);
  assert.match(r.nativeStackUnavailable, /signal in use/);
  assert.equal(Number((await c.waitForLine(/^captures /, 60000 * SLOW)).split(' ')[1]), 0);
  await c.exited;
});

test('nativeStack must be a boolean; CELERY_PULSE_NATIVE_STACK "1" or "0"', () => {
  const pulse = require(PKG);
  assert.throws(() => pulse.start({ file: '/tmp/x-never', nativeStack: 'yes' }), (e) => e.code === 'ERR_PULSE_INVALID_OPTION' && /nativeStack/.test(e.message) && /"yes"/.test(e.message));
  const before = process.env.CELERY_PULSE_NATIVE_STACK;
  process.env.CELERY_PULSE_NATIVE_STACK = 'maybe';
  try {
    assert.throws(() => pulse.start({ file: '/tmp/x-never' }), (e) => /CELERY_PULSE_NATIVE_STACK/.test(e.message) && /maybe/.test(e.message));
  } finally {
    if (before === undefined) delete process.env.CELERY_PULSE_NATIVE_STACK;
    else process.env.CELERY_PULSE_NATIVE_STACK = before;
  }
});

test('a pulse in a worker thread: nativeStack reads that thread; after the worker ends, the next worker\'s pulse still captures', { skip: !NATIVE && 'nativeStack is the native strategy\'s' }, async (t) => {
  const dir = tmpDir(t);
  const script = path.join(dir, 'workers.js');
  fs.writeFileSync(script, `'use strict';
const { Worker } = require('node:worker_threads');
const path = require('node:path');
function run(n) {
  const file = path.join(${JSON.stringify(dir)}, 'health-' + n);
  const w = new Worker(\`
    const pulse = require(\${JSON.stringify(${JSON.stringify(PKG)})});
    const crypto = require('node:crypto');
    const p = pulse.start({ file: \${JSON.stringify(file)}, interval: 0.1, maxStall: 0.5, strategy: 'native', logStalls: false });
    setTimeout(() => {
      crypto.pbkdf2Sync('secret', 'salt', 4000000, 32, 'sha512');
      setTimeout(() => { require('node:worker_threads').parentPort.postMessage(p.status().lastStall); p.stop(); }, 400);
    }, 300);\`, { eval: true });
  return new Promise((resolve, reject) => { let last; w.on('message', (m) => { last = m; }); w.on('error', reject); w.on('exit', () => resolve(last)); });
}
(async () => {
  for (const n of [1, 2]) console.log('lastStall ' + JSON.stringify(await run(n)));
})();
`);
  const c = runScript(t, script);
  const result = await c.exited;
  const { stdout, stderr } = c.output();
  assert.deepEqual(result, { code: 0, signal: null }, stderr);
  const lasts = stdout.trim().split('\n').map((l) => JSON.parse(l.slice('lastStall '.length)));
  assert.equal(lasts.length, 2, stdout);
  for (const last of lasts) {
    if (TSAN && last.nativeStack === null) continue; // no answer within the wait under TSan
    assert.ok(Array.isArray(last.nativeStack) && last.nativeStack.length > 0, JSON.stringify(last));
    assert.ok(last.nativeStack.some((f) => /pbkdf2|sha|crypto|evp|hmac/i.test(f.symbol ?? '')) || inRuntime(last.nativeStack), JSON.stringify(last.nativeStack));
  }
});
