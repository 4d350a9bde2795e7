'use strict';
// The gate: a loop busy for less than maxStall keeps the file fresh; a loop
// stuck for longer withholds beats, records why, and resumes on recovery.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startPulse, tmpDir, blockFor, sleep, waitFor, readRecord } = require('./helpers');

test('a 400 ms block with maxStall 0.6 s loses no beat', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.1, maxStall: 0.6 });
  t.after(() => pulse.stop());
  await sleep(250); // let the ping timer answer a few times

  const seen = [];
  let last = 0;
  const blockStart = Date.now();
  blockFor(400, () => {
    const m = fs.statSync(file).mtimeMs;
    if (m !== last) {
      seen.push(m);
      last = m;
    }
  });
  // The first entry is the beat before the block; each later one arrived during it.
  const during = seen.filter((m) => m >= blockStart);
  assert.ok(during.length >= 3, `expected >= 3 beats inside a 400 ms block at 100 ms, saw ${during.length}`);
  for (let i = 1; i < seen.length; i++) {
    const gap = seen[i] - seen[i - 1];
    assert.ok(gap < 250, `gap of ${gap.toFixed(1)} ms between beats during the block`);
  }
  assert.equal(pulse.status().withheld, 0);
  assert.equal(pulse.status().stalled, false);
});

test('a 2.5 s block withholds beats, records the stall, then recovers', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.1, maxStall: 0.6 });
  t.after(() => pulse.stop());
  await sleep(250);

  let lastChange = 0;
  let lastMtime = fs.statSync(file).mtimeMs;
  let stallRecord = null;
  let mtimeAtRecord = 0;
  const blockStart = Date.now();
  blockFor(2500, () => {
    const m = fs.statSync(file).mtimeMs;
    if (m !== lastMtime) {
      lastMtime = m;
      lastChange = Date.now();
    }
    if (Date.now() - blockStart > 1500 && stallRecord === null) {
      stallRecord = readRecord(file);
      mtimeAtRecord = fs.statSync(file).mtimeMs;
    }
  });
  const blockEnd = Date.now();

  // Beats stopped about maxStall after the loop went silent.
  const stoppedAfter = lastChange - blockStart;
  assert.ok(stoppedAfter >= 300 && stoppedAfter <= 1100, `last beat ${stoppedAfter} ms into the block`);
  // The record names the stall and the silence; its write kept the old mtime.
  assert.equal(stallRecord.state, 'stalled');
  assert.match(stallRecord.message, /stalled since .*loop silent for \d+\.\d s/);
  assert.ok(stallRecord.loopSilentMs >= 600, `loopSilentMs ${stallRecord.loopSilentMs}`);
  assert.ok(stallRecord.stalledSince);
  assert.ok(mtimeAtRecord <= blockStart + 1100, 'stall record refreshed the mtime');
  assert.ok(Date.now() - mtimeAtRecord > 1000);

  // Beats resume within one interval of the loop answering again.
  await waitFor(() => fs.statSync(file).mtimeMs > blockEnd, 2000, 5);
  const resumedAfter = fs.statSync(file).mtimeMs - blockEnd;
  assert.ok(resumedAfter <= 300, `first beat ${resumedAfter} ms after the block`);
  const status = pulse.status();
  assert.ok(status.withheld > 0, 'withheld counted');
  assert.equal(status.stalled, false);
  const record = readRecord(file);
  assert.equal(record.state, 'running');
  assert.match(record.message, /answering again/);
});

test('maxStall Infinity beats through any block (pure process liveness)', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.05, maxStall: Infinity });
  t.after(() => pulse.stop());
  const before = fs.statSync(file).mtimeMs;
  blockFor(700);
  assert.ok(fs.statSync(file).mtimeMs - before >= 500, 'beats continued through the block');
  assert.equal(pulse.status().withheld, 0);
});

test('beats keep to fixed deadlines: no drift over 40 beats', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.05, maxStall: Infinity });
  t.after(() => pulse.stop());
  const firstBeat = Date.parse(readRecord(file).lastBeatAt);
  await waitFor(() => pulse.status().beats >= 41, 10000, 20);
  // Every beat lands on start + k * interval; drift would accumulate an offset.
  const elapsed = pulse.status().lastBeatAt.getTime() - firstBeat;
  const offset = elapsed % 50;
  assert.ok(Math.min(offset, 50 - offset) <= 10, `beat ${elapsed} ms after the first is ${offset} ms off the grid`);
  assert.ok(elapsed >= 40 * 50 - 10);
});

test('a record written while beats are withheld never sets back a newer mtime (a file shared with live processes)', async (t) => {
  const file = path.join(tmpDir(t), 'health');
  const pulse = startPulse({ file, interval: 0.1, maxStall: 0.3 });
  t.after(() => pulse.stop());
  await sleep(200);
  // Another process beating the same file, simulated by touching it.
  let lastTouch = 0;
  let worstLag = 0;
  let state;
  blockFor(1500, () => {
    const now = Date.now();
    if (now - lastTouch >= 50) {
      fs.utimesSync(file, now / 1000, now / 1000);
      lastTouch = now;
    }
    worstLag = Math.max(worstLag, lastTouch - fs.statSync(file).mtimeMs);
    try { state = readRecord(file).state; } catch { /* mid-rename */ }
  });
  assert.equal(state, 'stalled', 'the stall was recorded');
  assert.ok(pulse.status().withheld >= 3);
  // Never back to this pulse's own last beat (over a second old by the end).
  // At worst to the sibling's previous touch, 50 ms earlier: a touch that
  // lands between the thread's read of the mtime and its rename is lost.
  assert.ok(worstLag <= 120, `the stall record set the mtime back by ${worstLag} ms`);
});
