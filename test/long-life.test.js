'use strict';
// A long life: start/stop cycles give their memory back, a process frozen
// whole (SIGSTOP, the cgroup freezer) reports no stall that never happened,
// and a record that could not be written reaches the disk once it can.
// Each case runs its pulse in a child process.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, STRATEGY, SANITIZED, tmpDir, runChildAsync, assertExit, readRecord, waitFor } = require('./helpers');
const { controlledChild, mountTmpfs, fillDisk, stopWhole } = require('./control');

const MB = 2 ** 20;
// Cycles measured after the warm-up, per strategy (the numbers), and
// the RSS growth they may cause.
const CYCLES = { native: 10000, worker: 1000 };
const WARM_UP = { native: 2000, worker: 1000 };
const RSS_BOUND_MB = 4;

// Under a sanitizer RSS is the sanitizer allocator's, and says nothing
// about the pulses.

test(`${CYCLES[STRATEGY]} start/stop cycles after a warm-up grow RSS by less than ${RSS_BOUND_MB} MB`, { timeout: 240000, skip: SANITIZED && 'RSS under a sanitizer runtime is its allocator\'s' }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const source = `
    const fs = require('node:fs');
    const file = ${JSON.stringify(file)};
    const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
    // After a full GC and a turn of the loop (finalizers, a worker's exit),
    // then another GC.
    const measure = async () => {
      global.gc(); await settle(); global.gc(); await settle(); global.gc();
      return { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed,
               threads: fs.readdirSync('/proc/self/task').length, fds: fs.readdirSync('/proc/self/fd').length };
    };
    const cycles = async (n) => {
      for (let i = 0; i < n; i++) {
        pulse.start({ file, interval: 1, maxStall: 1, strategy: STRATEGY }).stop();
        // A turn of the loop now and then, as a program that starts and
        // stops pulses gives it: a stopped worker's thread ends there.
        if (i % 50 === 49) await new Promise((resolve) => setImmediate(resolve));
      }
    };
    (async () => {
      await cycles(${WARM_UP[STRATEGY]});
      const before = await measure();
      await cycles(${CYCLES[STRATEGY]});
      const after = await measure();
      process.stdout.write(JSON.stringify({ before, after }));
    })();`;
  // V8 grows the young generation of a process that allocates fast, by up to
  // 32 MB, in steps: pinned small, what remains is the pulses' own memory.
  const result = await runChildAsync(source, { args: ['--expose-gc', '--max-semi-space-size=1'], timeout: 200000 });
  assertExit(result, 0);
  const { before, after } = JSON.parse(result.stdout);
  const grownMb = (after.rss - before.rss) / MB;
  t.diagnostic(`RSS ${(before.rss / MB).toFixed(1)} -> ${(after.rss / MB).toFixed(1)} MB (${grownMb.toFixed(2)} MB), ` +
    `heap ${(before.heap / MB).toFixed(2)} -> ${(after.heap / MB).toFixed(2)} MB`);
  assert.ok(grownMb < RSS_BOUND_MB, `RSS grew by ${grownMb.toFixed(2)} MB over ${CYCLES[STRATEGY]} cycles`);
  // A JavaScript leak would show here long before it shows in RSS.
  assert.ok(after.heap - before.heap < MB, `heapUsed grew by ${((after.heap - before.heap) / 1024).toFixed(0)} KB`);
  assert.equal(after.fds, before.fds, 'descriptors back to the baseline');
  assert.ok(after.threads <= before.threads, `threads ${before.threads} -> ${after.threads}`);
});

/** A child pulsing `file`; its stderr and status readable, killed when the test ends. */
async function child(t, options) {
  const c = controlledChild(PKG, { interval: 0.25, maxStall: 1, strategy: STRATEGY, ...options });
  t.after(() => c.child.kill('SIGKILL'));
  await c.ready;
  return c;
}

/** Freezes the child whole for `ms` (SIGSTOP, then SIGCONT). */
async function freeze(c, ms) {
  await stopWhole(c.child);
  await new Promise((resolve) => setTimeout(resolve, ms));
  c.child.kill('SIGCONT');
}

test('a process frozen for 4 x maxStall, then thawed: no withheld beat, no stall record, nothing logged', { timeout: 60000 }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const c = await child(t, { file });
  const before = await c.ask('status');
  await freeze(c, 4000);
  // Beats go on after the thaw: a few deadlines judged since.
  const after = await c.until((s) => s.beats >= before.beats + 4, 10000);
  assert.equal(after.withheld, 0, 'no beat withheld');
  assert.equal(after.stalled, false);
  assert.equal(after.stall, null);
  assert.equal(after.lastStall, null, 'no stall recorded');
  assert.equal(after.errors, 0);
  const record = readRecord(file);
  assert.equal(record.state, 'running');
  assert.equal(record.lastStall, undefined);
  assert.equal(c.stderr(), '', 'nothing on stderr');
  await c.finish();
});

test('a loop already stuck when the process is frozen is still reported as a stall', { timeout: 60000 }, async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const c = await child(t, { file });
  // Busy for 9 s of wall time: 0.3 s, then a 4 s freeze, then about 4.7 s
  // more, all of it longer than maxStall (1 s) outside the freeze.
  const { done } = await c.block(9000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  await freeze(c, 4000);
  await done;
  // The next deadline sees the loop answering and ends the stall.
  const after = await c.until((s) => s.lastStall !== null, 5000);
  assert.ok(after.withheld > 0, 'beats withheld during the stall');
  assert.ok(after.lastStall.durationMs >= 8000, `durationMs ${after.lastStall.durationMs}`);
  assert.match(c.stderr(), /event loop stalled for/);
  await c.until((s) => s.beats > after.beats);
  assert.ok(readRecord(file).lastStall, 'the recovery record carries lastStall');
  await c.finish();
});

test('a stall on a full file system: ENOSPC held until the recovery record with lastStall is on disk', { timeout: 60000 }, async (t) => {
  const dir = mountTmpfs(t, 'size=64k');
  if (dir === null) return;
  const file = path.join(dir, 'health');
  const interval = 0.25;
  const c = await child(t, { file, interval, maxStall: 0.5, logStalls: false });
  const filler = path.join(dir, 'filler');
  fillDisk(filler);
  // A stall of 1.5 s while nothing can be written: its records fail.
  const { done } = await c.block(1500);
  await done;
  const stalled = await c.until((s) => s.lastStall !== null, 5000);
  assert.ok(stalled.withheld > 0);
  // The loop answers again, but the record saying so cannot be written: the
  // error holds while the touches go on.
  const held = await c.until((s) => s.beats > stalled.beats + 2);
  assert.equal(held.lastError?.code, 'ENOSPC', JSON.stringify(held.lastError));
  assert.ok(held.errors >= 2, `errors ${held.errors}`);
  assert.equal(readRecord(file).lastStall, undefined, 'the record on disk is the old one');
  // Space returns: within two intervals the file holds the current record.
  const freed = Date.now();
  fs.unlinkSync(filler);
  await waitFor(() => {
    try {
      return readRecord(file).lastStall !== undefined;
    } catch {
      return false; // read between the write and the rename
    }
  }, 5000, 5);
  const tookMs = Date.now() - freed;
  t.diagnostic(`the recovery record reached the disk ${tookMs} ms after space returned`);
  const record = readRecord(file);
  assert.equal(record.state, 'running');
  assert.ok(record.lastStall.durationMs >= 1000, JSON.stringify(record.lastStall));
  assert.ok(tookMs <= 2 * interval * 1000 + 250, `took ${tookMs} ms (two intervals: ${2 * interval * 1000} ms)`);
  const back = await c.until((s) => s.lastError === null);
  assert.ok(back.errors >= held.errors);
  await c.finish();
});
