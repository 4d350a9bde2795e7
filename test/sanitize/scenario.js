'use strict';
// The valgrind memcheck scenario (test/sanitize/valgrind.sh): one process
// that walks a pulse through start, beats, a stall and its recovery, a
// deleted file, a planted symlink, start/stop cycles, pulses in worker
// threads (stopped, terminated, and an addon loaded and unloaded by workers
// alone), and exits with a pulse still running. Timings are generous: under
// valgrind everything runs many times slower and one thread at a time.
const assert = require('node:assert/strict');
const { execSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const PKG = path.join(__dirname, '..', '..');
// The files go to the folder given as the first argument (created if
// missing), or to a new temporary folder; either is left for the caller to
// remove, since a pulse is still running when the process exits.
const dir = process.argv[2] || fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-valgrind-'));
fs.mkdirSync(dir, { recursive: true });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const step = (name) => process.stdout.write(`scenario: ${name}\n`);

async function waitFor(predicate, timeoutMs) {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out: ${predicate}`);
    await sleep(20);
  }
}

// Workers that each start a pulse; `how` is 'stop', 'terminate' or 'exit'.
async function workers(count, how, tag) {
  const body = `
    const { parentPort, workerData } = require('node:worker_threads');
    const p = require(workerData.pkg).start({ file: workerData.file, interval: 0.2, maxStall: 30 });
    if (workerData.how === 'stop') p.stop();
    parentPort.postMessage('up');
    if (workerData.how === 'terminate') setInterval(() => {}, 1000);`;
  const started = [];
  for (let i = 0; i < count; i++) {
    const w = new Worker(body, { eval: true, workerData: { pkg: PKG, file: path.join(dir, `${tag}-${i}`), how } });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    started.push(new Promise((resolve, reject) => {
      w.once('message', () => resolve({ w, exited }));
      w.once('error', reject);
    }));
  }
  const all = await Promise.all(started);
  await sleep(300);
  await Promise.all(all.map(({ w, exited }) => (how === 'terminate' ? w.terminate() : exited)));
  for (let i = 0; i < count; i++) {
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, `${tag}-${i}`), 'utf8')).state, 'stopped');
  }
}

// Workers whose loops get stuck, so their pulses diagnose the stall and ask
// for their stacks; terminated at staggered moments around those captures.
async function stuckWorkers(count) {
  const body = `
    const { parentPort, workerData } = require('node:worker_threads');
    const p = require(workerData.pkg).start({ file: workerData.file, interval: 0.05, maxStall: 0.1, logStalls: false });
    parentPort.postMessage('up');
    setTimeout(() => { for (;;); }, 20);`;
  const all = [];
  for (let i = 0; i < count; i++) {
    const w = new Worker(body, { eval: true, workerData: { pkg: PKG, file: path.join(dir, `stuck-${i}`) } });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    all.push({ w, exited, at: 200 + i * 150 });
  }
  await Promise.all(all.map(({ w, exited, at }) => sleep(at).then(() => w.terminate()).then(() => exited)));
}

// Only a scenario that reached its end passes: an await that never settles
// would otherwise let the loop drain and exit 0 half-way.
process.exitCode = 1;

async function main() {
  // The addon loaded by workers only, then unloaded when the last one ends.
  step('workers only');
  await workers(3, 'terminate', 'first');

  const pulse = require(PKG);
  const file = path.join(dir, 'health');
  const p = pulse.start({ file, interval: 0.2, maxStall: 2 });

  step('beats');
  await waitFor(() => p.status().beats >= 4, 30000);

  step('stall (diagnosed, its stack captured) and recovery');
  p.track('scenario job', () => {
    const blockEnd = Date.now() + 5000;
    while (Date.now() < blockEnd);
  });
  await waitFor(() => p.status().withheld > 0 && !p.status().stalled, 30000);
  await waitFor(() => JSON.parse(fs.readFileSync(file, 'utf8')).state === 'running', 30000);
  assert.deepEqual(p.status().lastStall.active.map((a) => a.label), ['scenario job']);

  step('stuck outside JavaScript (nativeStack on): a child waited for, then keys derived');
  // The stuck thread is interrupted in a system call and in OpenSSL's code:
  // the capture's signal handler, the symbolizer over the raw stack copy and
  // waitingFor all run under memcheck, and the interrupted calls still give
  // their right results.
  const recorded = () => JSON.stringify(p.status().lastStall);
  let before = recorded();
  assert.equal(execSync('sleep 4; echo slept', { encoding: 'utf8' }), 'slept\n');
  await waitFor(() => !p.status().stalled && recorded() !== before, 30000);
  console.log(`scenario: lastStall.waitingFor ${JSON.stringify(p.status().lastStall.waitingFor)}`);
  before = recorded();
  // 100,000 rounds: about 0.1 s on bare metal, seconds under memcheck, so
  // the thread sits in OpenSSL when the stall is diagnosed.
  const derive = () => crypto.pbkdf2Sync('password', 'salt', 100000, 32, 'sha256').toString('hex');
  const key = '0394a2ede332c9a13eb82e9b24631604c31df978b4e2f0fbd2c549944f9d79a5';
  const keyEnd = Date.now() + 4000;
  while (Date.now() < keyEnd) assert.equal(derive(), key);
  await waitFor(() => !p.status().stalled && recorded() !== before, 30000);
  console.log(`scenario: lastStall.nativeStack ${JSON.stringify(p.status().lastStall.nativeStack)}`);

  step('stuck workers terminated while their stacks may be captured');
  await stuckWorkers(4);

  step('deleted file');
  fs.unlinkSync(file);
  await waitFor(() => fs.existsSync(file), 30000);

  step('planted symlink');
  fs.symlinkSync(path.join(dir, 'target'), `${file}.link`);
  fs.renameSync(`${file}.link`, file);
  await waitFor(() => p.status().lastError?.code === 'ELOOP', 30000);
  assert.equal(fs.existsSync(path.join(dir, 'target')), false);
  fs.unlinkSync(file);
  await waitFor(() => p.status().lastError === null && fs.existsSync(file), 30000);

  step('start/stop cycles and refusals');
  for (let i = 0; i < 200; i++) {
    const q = pulse.start({ file: path.join(dir, `cycle-${i % 7}`), interval: 0.05, removeOnStop: i % 2 === 0 });
    assert.throws(() => pulse.start({ file: path.join(dir, `cycle-${i % 7}`) }), { code: 'ERR_PULSE_FILE_IN_USE' });
    q.stop();
  }
  fs.mkdirSync(path.join(dir, 'a-directory'));
  assert.throws(() => pulse.start({ file: path.join(dir, 'a-directory') }), { code: 'ERR_PULSE_FILE' });

  step('workers');
  await workers(3, 'stop', 'stopped');
  await workers(3, 'terminate', 'terminated');

  p.stop();
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).state, 'stopped');

  step('exit with a pulse running');
  pulse.start({ file: path.join(dir, 'left-running'), interval: 0.05, maxStall: 30 });
  await sleep(300);
  step('done');
  process.exitCode = 0;
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
