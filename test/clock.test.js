'use strict';
// The worker strategy's beat times (src/worker/clock.ts): the wall clock to
// the monotonic clock's resolution, checked against simulated clocks (the
// wall clock is stepped, which a test cannot do to the real one), then on the
// real beats' mtimes.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { STRATEGY, tmpDir } = require('./helpers');

const CLOCK = require.resolve('../dist/worker/clock.js');

// A fresh copy of the module (its offset is module state) over fake clocks:
// time advances 1 µs per read; the wall clock is the monotonic one plus
// `offset`, in whole milliseconds as Date.now() gives it.
function simulated(t, offset) {
  const clock = { mono: 5000.0004, offset };
  const realNow = Date.now;
  const realHrtime = process.hrtime.bigint;
  Date.now = () => Math.floor((clock.mono += 0.001) + clock.offset);
  process.hrtime.bigint = () => BigInt(Math.round((clock.mono += 0.001) * 1e6));
  t.after(() => {
    Date.now = realNow;
    process.hrtime.bigint = realHrtime;
  });
  delete require.cache[CLOCK];
  const { exactWallMs } = require(CLOCK);
  return {
    clock,
    // The reading; `truth` is the true wall time just before it, and `off`
    // how far the reading lies outside the true times the call spanned.
    read() {
      const truth = clock.mono + clock.offset;
      const ms = exactWallMs();
      const after = clock.mono + clock.offset;
      return { ms, truth, off: ms < truth ? ms - truth : ms > after ? ms - after : 0 };
    },
  };
}

test('exactWallMs: within microseconds of the wall clock, never before Date.now(), follows steps', (t) => {
  const sim = simulated(t, 1.7e12 + 0.4567);
  const errors = [];
  for (let i = 0; i < 200; i++) {
    sim.clock.mono += 13.37; // between beats
    const { ms, truth, off } = sim.read();
    errors.push(Math.abs(off));
    assert.ok(ms >= Math.floor(truth), 'never earlier than Date.now()');
  }
  assert.ok(Math.max(...errors) < 0.02, `largest error ${Math.max(...errors)} ms`);

  // The wall clock steps back 10 s: followed at the next reading.
  sim.clock.offset -= 10000;
  let { ms, truth, off } = sim.read();
  assert.ok(Math.abs(off) < 0.02, `after a step back: ${off} ms off`);
  // Ahead by 2.5 s: followed at once, within the millisecond Date.now() gives.
  sim.clock.offset += 2500;
  ({ ms, truth, off } = sim.read());
  assert.ok(ms >= Math.floor(truth) && Math.abs(off) < 1, `after a step ahead: ${off} ms off`);
  // A slew of 0.3 ms down (less than Date.now()'s resolution) stays within 1 ms.
  sim.clock.offset -= 0.3;
  for (let i = 0; i < 50; i++) {
    sim.clock.mono += 7.1;
    ({ off } = sim.read());
    assert.ok(Math.abs(off) < 1, `during a slew: ${off} ms off`);
  }
});

test('the worker strategy beats with sub-millisecond mtimes, never before the record\'s time', {
  skip: STRATEGY === 'worker' ? false : 'the native strategy stamps nanoseconds from the kernel\'s clock',
  timeout: 30000,
}, async (t) => {
  const pulse = require('..');
  const file = path.join(tmpDir(t), 'health');
  const p = pulse.start({ file, interval: 0.05, strategy: 'worker' });
  t.after(() => p.stop());
  // The first beat is start()'s record: its mtime is the record's lastBeatAt,
  // which is in whole milliseconds, plus the fraction.
  const first = fs.statSync(file, { bigint: true }).mtimeNs;
  const { lastBeatAt } = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(Number(first / 1000000n), Date.parse(lastBeatAt), `mtime ${first} ns, lastBeatAt ${lastBeatAt}`);
  const mtimes = new Set();
  const until = Date.now() + 10000;
  while (mtimes.size < 20 && Date.now() < until) {
    mtimes.add(fs.statSync(file, { bigint: true }).mtimeNs);
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(mtimes.size >= 20, `only ${mtimes.size} beats seen`);
  // Date.now() alone would make every one a whole millisecond. A beat whose
  // offset sample rose (the wall clock moved ahead) is stamped with Date.now()
  // as it is; the rest have their fraction.
  const whole = [...mtimes].filter((ns) => ns % 1000000n === 0n);
  assert.ok(whole.length <= mtimes.size / 2, `${whole.length} of ${mtimes.size} mtimes are whole milliseconds`);
});
