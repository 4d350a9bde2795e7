'use strict';
// 5. Event-loop cost: the heartbeat's callbacks on an idle loop, and an A/B
// of a loop-bound workload with and without a heartbeat at interval 0.05 s,
// judged against the spread of A/A runs (nothing vs nothing).
const fs = require('node:fs');
const { runChild, tempDir } = require('../lib/proc');
const { median, percentile, pairedRatios, verdict, fmtRatio } = require('../lib/stats');

const INTERVAL = 0.05; // maxStall defaults to the interval: the loop is pinged every 12.5 ms
const HOPS = 1e6;

const us = (ns) => `${(ns / 1000).toFixed(ns < 10000 ? 2 : 0)} µs`;

async function loop(ctx) {
  const names = ctx.contenders(['native', 'worker', 'plain']);
  const rounds = ctx.quick ? 3 : 8;
  const dir = tempDir('loop');

  ctx.log(`5. event-loop cost: idle loop for 4 s with ${['none', ...names].join(', ')} (side by side)`);
  const idleList = await Promise.all(
    ['none', ...names].map((name) => runChild('loop', { mode: 'idle', contender: name, dir, interval: INTERVAL })),
  );
  const idle = Object.fromEntries(['none', ...names].map((n, i) => [n, idleList[i]]));
  for (const [n, r] of Object.entries(idle)) {
    if (r.error) ctx.log(`  ${n}: ${r.error}`);
    else ctx.log(`  ${n}: ${r.callbacksPerSec.toFixed(1)} timer callbacks/s, main thread CPU ${us(r.mainCpuNsPerSec)}/s`);
  }

  const answer = await runChild('loop', { mode: 'answer', dir });
  const warmAnswerNs = answer.error ? null : answer.warmAnswerNs;

  // A/B: rounds of [none, none, contenders...] in a rotating order.
  const arms = ['none', 'none2', ...names];
  ctx.log(`   A/B: ${rounds} rounds of ${HOPS.toExponential(0)} setImmediate hops: ${arms.join(', ')}`);
  const runs = Object.fromEntries(arms.map((a) => [a, []]));
  for (let r = 0; r < rounds; r++) {
    const order = arms.map((_, i) => arms[(i + r) % arms.length]);
    const round = {};
    for (const arm of order) {
      const contender = arm === 'none2' ? 'none' : arm;
      const run = await runChild('loop', { mode: 'hops', contender, dir, interval: INTERVAL, hops: HOPS });
      if (run.error) ctx.log(`  ${arm}: ${run.error}`);
      round[arm] = run.error ? { ms: NaN, cpuMs: NaN, callbacks: 0, callbackNsEach: NaN } : run;
    }
    for (const arm of arms) runs[arm].push(round[arm]);
  }
  fs.rmSync(dir, { recursive: true, force: true });

  // Per-round ratios against the round's first no-heartbeat run; the noise
  // band is the 90th percentile of how far the second no-heartbeat run strays.
  const compare = (key) => {
    const base = runs.none.map((r) => r[key]);
    const clean = (xs) => xs.filter((x) => Number.isFinite(x));
    const aa = clean(pairedRatios(base, runs.none2.map((r) => r[key])));
    const band = percentile(aa.map((r) => Math.abs(r - 1)), 90);
    const ab = {};
    for (const n of names) {
      const ratios = clean(pairedRatios(base, runs[n].map((r) => r[key])));
      ab[n] = { ratios, median: ratios.length ? median(ratios) : NaN };
    }
    return { aa, band, ab };
  };
  const cpu = compare('cpuMs');
  const wall = compare('ms');
  ctx.log(`  main-thread CPU: A/A noise ±${(cpu.band * 100).toFixed(1)} %; ` + names.map((n) => `${n} ${fmtRatio(cpu.ab[n].median)}`).join(', '));
  ctx.log(`  wall time:       A/A noise ±${(wall.band * 100).toFixed(1)} %; ` + names.map((n) => `${n} ${fmtRatio(wall.ab[n].median)}`).join(', '));
  // The heartbeat's callbacks while the loop is busy: warm, as a worker's are.
  const busy = {};
  for (const n of names) {
    const ok = runs[n].filter((r) => r.callbacks > 0);
    busy[n] = ok.length
      ? {
          nsEach: median(ok.map((r) => r.callbackNsEach)),
          perSec: median(ok.map((r) => r.callbacks / (r.ms / 1000))),
          controlNsEach: median(ok.map((r) => r.controlNsEach)),
        }
      : null;
    if (busy[n]) ctx.log(`  ${n} on a busy loop: ${us(busy[n].nsEach)} per callback (timing it costs ${us(busy[n].controlNsEach)}, subtracted)`);
  }

  const cells = (format) => {
    const out = {};
    for (const name of ctx.columns) {
      if (name === 'worker' && ctx.workerPending) out[name] = 'pending';
      else out[name] = format(name);
    }
    return out;
  };
  const idleCell = (name, f) => (idle[name] && !idle[name].error ? f(idle[name]) : 'error');
  const noneCpu = idle.none && !idle.none.error ? idle.none.mainCpuNsPerSec : NaN;
  const band = (x) => `±${(x.band * 100).toFixed(1)} %`;
  return {
    rows: [
      {
        id: '5',
        measure: `heartbeat timer callbacks on the loop per second (interval ${INTERVAL} s, maxStall default = interval)`,
        cells: cells((n) => idleCell(n, (r) => r.callbacksPerSec.toFixed(0))),
        target: 'info',
        verdict: 'info',
      },
      {
        id: '5',
        measure: 'loop time per callback while the loop is busy / per second',
        cells: cells((n) => (busy[n] ? `${us(busy[n].nsEach)} / ${us(busy[n].nsEach * busy[n].perSec)}` : 'none on a timer')),
        target: '< 1 µs per answer',
        verdict: verdict(busy.native?.nsEach, { op: '<=', limit: 1000 }),
        why: busy.native
          ? `the callback is one native call, answer(); in a tight loop, where its path through V8, Node-API and the clock stays in the caches, ` +
            `it takes ${warmAnswerNs === null ? 'n/a' : us(warmAnswerNs)}, but run ${Math.round(busy.native.perSec)} times a second between other work it takes ${us(busy.native.nsEach)}`
          : undefined,
        plan: 'answer without entering JavaScript: an unref\'d Node-API thread-safe function fired by the heartbeat thread, whose callback runs in C on the loop thread ' +
          'and stores the time (no timer, no V8 call, and the loop is asked only as often as the gate needs); or keep the timer but have it bump a counter in a ' +
          'shared Int32Array that the thread reads, instead of calling into the addon',
      },
      {
        id: '5',
        measure: 'main-thread CPU per second on an otherwise idle loop (wakeups included)',
        cells: cells((n) => idleCell(n, (r) => us(r.mainCpuNsPerSec))),
        target: 'info',
        verdict: 'info',
        note: `with no heartbeat: ${Number.isNaN(noneCpu) ? 'n/a' : us(noneCpu)}/s`,
      },
      {
        id: '5',
        measure: `A/B ${HOPS.toExponential(0)} setImmediate hops, main-thread CPU vs no heartbeat (median of ${rounds} paired runs)`,
        cells: cells((n) => fmtRatio(cpu.ab[n]?.median)),
        target: `within A/A noise (${band(cpu)})`,
        verdict: verdict(cpu.ab.native?.median, { op: 'within', limit: cpu.band }),
      },
      {
        id: '5',
        measure: 'same runs, wall time',
        cells: cells((n) => fmtRatio(wall.ab[n]?.median)),
        target: `info (A/A noise ${band(wall)})`,
        verdict: 'info',
      },
    ],
    data: { interval: INTERVAL, hops: HOPS, rounds, idle, runs, cpu, wall, busy, warmAnswerNs },
  };
}

module.exports = { loop };
