'use strict';
// 10. Outside JavaScript: how soon after the first withheld deadline the
// record names the native frames of a thread stuck in a native call, and
// what the capture costs the stuck thread (its signal handler).
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { tempDir, watchStalls } = require('../lib/proc');
const { PKG } = require('../lib/contenders');
const { median, percentile, verdict, fmtMs } = require('../lib/stats');

const CHILD = path.join(__dirname, '..', 'child', 'native-stack.js');

async function nativeStack(ctx) {
  if (!ctx.contenders(['native']).includes('native')) return { rows: [], data: {} };
  const rounds = ctx.quick ? 4 : 12;
  ctx.log(`10. outside JavaScript: ${rounds} stalls of ~1 s in pbkdf2Sync; the capture's time on the stuck thread`);
  const dir = tempDir('native-stack');
  const file = path.join(dir, 'health');
  const child = spawn(process.execPath, [CHILD, PKG, 'record', file, String(rounds)], { stdio: 'ignore' });
  const stalls = await watchStalls(child, file);
  fs.rmSync(dir, { recursive: true, force: true });
  // The deadline's wall time is the record's updatedAt; the record is renamed in after the diagnosis.
  const latency = stalls.map((s) => s.seenAt - Date.parse(s.updatedAt));
  const named = stalls.filter((s) => Array.isArray(s.nativeStack) && s.nativeStack.some((f) => /pbkdf2|sha/i.test(f.symbol ?? ''))).length;
  ctx.log(`  ${stalls.length} stalls seen, ${named} naming a PBKDF2/SHA frame; deadline to record median ${fmtMs(median(latency))}, max ${fmtMs(Math.max(...latency))}`);

  const r = spawnSync(process.execPath, [CHILD, PKG, 'handler', '-', ctx.quick ? '2' : '10'], {
    encoding: 'utf8', timeout: 180000, killSignal: 'SIGKILL',
  });
  if (r.status !== 0) throw new Error(`native-stack child failed: ${r.stderr}`);
  const handlerUs = JSON.parse(r.stdout).handlerNs.map((ns) => ns / 1000);
  const p99 = percentile(handlerUs, 99);
  ctx.log(`  signal handler on the stuck thread: median ${median(handlerUs).toFixed(1)} µs, p99 ${p99.toFixed(1)} µs over ${handlerUs.length} captures`);
  return {
    rows: [
      {
        id: '10',
        measure: 'first withheld deadline to the stall record with native frames (median, max)',
        cells: { native: `${fmtMs(median(latency))} (max ${fmtMs(Math.max(...latency))})` },
        target: '≤ 250 ms',
        verdict: verdict(Math.max(...latency), { op: '<=', limit: 250 }),
        note: `${named} of ${rounds} records named a PBKDF2/SHA frame`,
      },
      {
        id: '10',
        measure: 'time the stuck thread spends in the native stack capture (p99)',
        cells: { native: `${p99.toFixed(1)} µs` },
        target: '≤ 50 µs',
        verdict: verdict(p99, { op: '<=', limit: 50 }),
        note: `median ${median(handlerUs).toFixed(1)} µs over ${handlerUs.length} captures during pbkdf2Sync`,
      },
    ],
    data: { latency, named, handlerUs },
  };
}

module.exports = { nativeStack };
