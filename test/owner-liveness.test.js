'use strict';
// The worker strategy's check that the heartbeat thread's owner still lives
// (src/worker/worker-state.ts): an owner that answers within maxStall always has a
// waiter left for the thread to wake, so "none left" can only mean it is
// gone. The behaviour itself (Deno keeps a terminated thread's workers
// running) is exercised by test/runtimes/run.sh under Deno.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const S = require('../dist/worker/worker-state.js');

const NS = 1_000_000_000n;
const cases = [
  [60, 60], [1, 1], [0.2, 0.5], [0.05, 5], [10, 30], [1, 1000], [0.01, 0.01], [5, 1],
];

for (const [interval, maxStall] of cases) {
  test(`interval ${interval} s, maxStall ${maxStall} s: waiters outlast every silence within maxStall`, () => {
    const intervalNs = BigInt(Math.round(interval * 1e9));
    const maxStallNs = BigInt(Math.round(maxStall * 1e9));
    const waiters = S.ownerWaiters(intervalNs, maxStallNs);
    const span = S.ownerSpanNs(waiters, intervalNs);
    assert.ok(waiters >= 4 && waiters <= S.MAX_OWNER_WAITERS, `waiters ${waiters}`);
    if (waiters < S.MAX_OWNER_WAITERS) assert.ok(span >= maxStallNs, `span ${span} < maxStall ${maxStallNs}`);
    // Deadlines (one wake each) within a silence of `span`, at most, plus the
    // one the owner may not have seen counted yet: fewer than the waiters.
    const deadlines = Number(span / intervalNs) + 1;
    assert.ok(deadlines + 1 < waiters, `${deadlines} deadlines could wake all ${waiters} waiters`);
  });
}

test('with the gate off (maxStall Infinity) the owner keeps the most waiters', () => {
  assert.equal(S.ownerWaiters(NS, -1n), S.MAX_OWNER_WAITERS);
  assert.equal(S.ownerSpanNs(S.MAX_OWNER_WAITERS, NS), BigInt(S.MAX_OWNER_WAITERS - 3) * NS);
});
