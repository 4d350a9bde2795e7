'use strict';
// 8. The stall diagnosis: how soon after the first withheld deadline the
// record says where the loop is stuck (its stack included), and what reading
// the stack costs the stuck thread (the V8 interrupt's callback).
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { tempDir, watchStalls } = require('../lib/proc');
const { PKG } = require('../lib/contenders');
const { median, percentile, verdict, fmtMs } = require('../lib/stats');

async function diagnosis(ctx) {
  const rounds = ctx.quick ? 4 : 12;
  ctx.log(`8. stall diagnosis: ${rounds} stalls of 700 ms in a fresh process per strategy; stack capture cost`);
  const latency = {};
  const withStack = {};
  for (const strategy of ctx.contenders(['native', 'worker'])) {
    const dir = tempDir('diag');
    const file = path.join(dir, 'health');
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'child', 'diagnosis.js'), PKG, file, strategy, String(rounds)], {
      stdio: 'ignore',
    });
    const stalls = await watchStalls(child, file);
    fs.rmSync(dir, { recursive: true, force: true });
    // The deadline's wall time is the record's updatedAt; the record is renamed in after the diagnosis.
    latency[strategy] = stalls.map((s) => s.seenAt - Date.parse(s.updatedAt));
    withStack[strategy] = stalls.filter((s) => Array.isArray(s.stack) && s.stack[0]?.function === 'spin').length;
    ctx.log(`  ${strategy}: ${stalls.length} stalls seen, ${withStack[strategy]} with the stuck frame; deadline to record ` +
      `median ${fmtMs(median(latency[strategy]))}, max ${fmtMs(Math.max(...latency[strategy]))}`);
  }
  // The interrupt: the stack piece's own timing, a thread spinning 3 and 30 calls deep.
  const callbackMs = [];
  for (const depth of [3, 30]) {
    const r = spawnSync(process.execPath, [path.join(__dirname, '..', 'child', 'stack.js'), ctx.quick ? 20 : 100, 10, depth], {
      encoding: 'utf8', timeout: 120000, killSignal: 'SIGKILL',
    });
    if (r.status !== 0) throw new Error(`stack child failed: ${r.stderr}`);
    const records = JSON.parse(r.stdout).records.filter((x) => x.code === 0).slice(1);
    callbackMs.push(...records.map((x) => x.interruptNs / 1e6));
  }
  ctx.log(`  interrupt callback on the stuck thread: median ${fmtMs(median(callbackMs))}, p99 ${fmtMs(percentile(callbackMs, 99))}`);
  const cells = (values) => Object.fromEntries(Object.entries(values).map(([k, v]) => [k, `${fmtMs(median(v))} (max ${fmtMs(Math.max(...v))})`]));
  return {
    rows: [
      {
        id: '8',
        measure: 'first withheld deadline to the stall record with its stack (median, max)',
        cells: cells(latency),
        target: '≤ 250 ms',
        verdict: verdict(Math.max(...latency.native), { op: '<=', limit: 250 }),
        note: `${withStack.native} of ${rounds} native records named the stuck frame; the worker strategy reads no stack`,
      },
      {
        id: '8',
        measure: 'time the stuck thread spends in the stack interrupt (p99)',
        cells: { native: fmtMs(percentile(callbackMs, 99)) },
        target: '≤ 1 ms',
        verdict: verdict(percentile(callbackMs, 99), { op: '<=', limit: 1 }),
        note: `median ${fmtMs(median(callbackMs))} over ${callbackMs.length} captures, 3 and 30 calls deep`,
      },
    ],
    data: { latency, withStack, callbackMs },
  };
}

module.exports = { diagnosis };
