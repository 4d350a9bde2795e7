'use strict';
// 1. Beat punctuality while the event loop is blocked, and 7. the same with
// 100 pulses in one process (plus their RSS).
const fs = require('node:fs');
const { runChild, tempDir } = require('../lib/proc');
const { beatGaps, percentile, median, verdict, fmtMs, fmtBytes } = require('../lib/stats');

const INTERVAL = 0.05;
const MAX_STALL = 10; // large, so the gate never withholds during the block
const BLOCK_MS = 3000;
const GATE_MAX_STALL = 1; // the chart's extra row: a gate that does close

/** Gaps, beats inside the block and the chart's beat times of one child run. */
function analyse(run) {
  const intervalMs = run.interval * 1000;
  const perFile = run.mtimes.map((times, i) => beatGaps(times, run.counts[i], run.blockStart, run.blockEnd, intervalMs));
  return {
    gaps: perFile.flatMap((f) => f.gaps),
    unobserved: perFile.reduce((a, f) => a + f.unobserved, 0),
    // The heartbeat's own count of beats written while the loop was blocked.
    inside: run.beatsDuring,
    // Beat times relative to the start of the block, first file only.
    timeline: run.mtimes[0].map((t) => t - run.blockStart).filter((t) => t > -500 && t < BLOCK_MS + 500),
    blockMs: run.blockEnd - run.blockStart,
    withheld: run.withheld.reduce((a, b) => a + b, 0),
    contention: run.contention,
  };
}

/**
 * Runs each variant ({key, contender, extra}) `rounds` times, in an order
 * rotated every round so drifts in machine load spread evenly.
 */
async function blockedRuns(ctx, variants, { rounds, count, rss }) {
  const out = Object.fromEntries(variants.map((v) => [v.key, []]));
  for (let r = 0; r < rounds; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]);
    for (const v of order) {
      const dir = tempDir('punct');
      const run = await runChild(
        'punctuality',
        { contender: v.contender, dir, count, interval: INTERVAL, maxStall: MAX_STALL, blockMs: BLOCK_MS, rss, ...v.extra },
        { nodeArgs: rss ? ['--expose-gc'] : [], timeoutMs: 180000 },
      );
      fs.rmSync(dir, { recursive: true, force: true });
      const error = run.error || run.fifoError;
      if (error) {
        ctx.log(`  ${v.key}: ${error}`);
        out[v.key].push({ error });
        continue;
      }
      const a = analyse(run);
      ctx.log(
        `  ${v.key}${count > 1 ? ` x${count}` : ''}: max gap ${fmtMs(Math.max(...a.gaps))}, ` +
          `beats written while blocked ${median(a.inside)}${a.unobserved ? ` (${a.unobserved} not seen by the blocked observer)` : ''}; ` +
          `other processes used ${a.contention.otherCores.toFixed(2)} cores, heartbeat threads waited ${a.contention.threadWaitMs.toFixed(1)} ms for a CPU`,
      );
      out[v.key].push({ ...a, rssAdded: rss ? run.rssAfter - run.rssBefore : null, startAllMs: run.startAllMs });
    }
  }
  return out;
}

const plainVariants = (names) => names.map((n) => ({ key: n, contender: n, extra: {} }));

/** Pools the rounds of one contender. */
function pool(runs) {
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) return { error: runs[0]?.error ?? 'no run' };
  const gaps = ok.flatMap((r) => r.gaps);
  const worst = ok.reduce((a, b) => (Math.max(...b.gaps) > Math.max(...a.gaps) ? b : a));
  return {
    runs: ok.length,
    maxGap: Math.max(...gaps),
    p99Gap: percentile(gaps, 99),
    medianGap: percentile(gaps, 50),
    insideMedian: median(ok.flatMap((r) => r.inside)),
    insideMin: Math.min(...ok.flatMap((r) => r.inside)),
    withheld: ok.reduce((a, r) => a + r.withheld, 0),
    unobserved: ok.reduce((a, r) => a + r.unobserved, 0),
    gapsCount: gaps.length,
    // Machine load while blocked: cores used by other processes (median of
    // runs), and the heartbeat threads' total wait for a CPU (all runs).
    otherCores: median(ok.map((r) => r.contention.otherCores)),
    stealCores: median(ok.map((r) => r.contention.stealCores)),
    threadWaitMs: ok.reduce((a, r) => a + r.contention.threadWaitMs, 0),
    rssAdded: ok[0].rssAdded === null ? null : median(ok.map((r) => r.rssAdded)),
    startAllMs: median(ok.map((r) => r.startAllMs)),
    timeline: worst.timeline,
    blockMs: worst.blockMs,
    // The run the chart shows (the one with the largest gap).
    worst: { maxGap: Math.max(...worst.gaps), inside: median(worst.inside), unobserved: worst.unobserved },
  };
}

function cellsOf(ctx, pooled, format) {
  const cells = {};
  for (const name of ctx.columns) {
    if (name === 'worker' && ctx.workerPending) cells[name] = 'pending';
    else if (!pooled[name]) cells[name] = '—';
    else if (pooled[name].error) cells[name] = 'error';
    else cells[name] = format(pooled[name], name);
  }
  return cells;
}

/** Why beats came late, from the run's own measurements. */
function lateness(pooled) {
  const n = pooled.native;
  if (!n || n.error) return undefined;
  const fifo = pooled.fifo && !pooled.fifo.error ? `; the same block with the thread at SCHED_FIFO (row below, or the single-pulse runs) gave max ${fmtMs(pooled.fifo.maxGap)}` : '';
  return `late wakeups, not the beat's work: the heartbeat threads spent ${fmtMs(n.threadWaitMs)} in total runnable but waiting for a CPU, ` +
    `while the blocked loop held one core and other processes kept ${n.otherCores.toFixed(2)} of ${require('node:os').cpus().length} busy${fifo}`;
}

const LATENESS_PLAN =
  'let the native thread ask for SCHED_FIFO priority 1 when the process may (CAP_SYS_NICE or RLIMIT_RTPRIO >= 1) and keep the normal policy otherwise; ' +
  'it runs a few µs per beat, so it cannot starve anything. Without that privilege: give the worker CPU headroom, since a busy loop plus its heartbeat need more than one core';

async function punctuality(ctx) {
  const names = ctx.contenders(['native', 'worker', 'plain']);
  const rounds = ctx.quick ? 1 : 3;
  ctx.log(`1. punctuality: ${rounds} round(s) of ${names.join(', ')}, loop blocked ${BLOCK_MS} ms, interval ${INTERVAL * 1000} ms`);
  // Besides the contenders: native with its thread lifted to SCHED_FIFO by
  // the bench (is lateness the scheduler's?), and native with a gate that
  // closes during the block (for the chart).
  const variants = [
    ...plainVariants(names),
    { key: 'fifo', contender: 'native', extra: { fifo: true } },
  ];
  const runs = await blockedRuns(ctx, variants, { rounds, count: 1, rss: false });
  const pooled = Object.fromEntries(variants.map((v) => [v.key, pool(runs[v.key])]));
  const gateRuns = await blockedRuns(ctx, [{ key: 'gate', contender: 'native', extra: { maxStall: GATE_MAX_STALL } }], { rounds: 1, count: 1, rss: false });
  const gate = pool(gateRuns.gate);

  const limit = INTERVAL * 1000 + 5;
  const expected = Math.floor(BLOCK_MS / (INTERVAL * 1000));
  const rows = [
    {
      id: '1',
      measure: `max gap between beats, loop blocked ${BLOCK_MS / 1000} s, interval ${INTERVAL * 1000} ms (${rounds} runs)`,
      cells: cellsOf(ctx, pooled, (p) => fmtMs(p.maxGap)),
      target: `≤ ${limit} ms`,
      verdict: verdict(pooled.native?.maxGap, { op: '<=', limit }),
      why: lateness(pooled),
      plan: LATENESS_PLAN,
    },
    {
      id: '1',
      measure: 'p99 gap between beats, same runs',
      cells: cellsOf(ctx, pooled, (p) => fmtMs(p.p99Gap)),
      target: `≤ ${limit} ms`,
      verdict: verdict(pooled.native?.p99Gap, { op: '<=', limit }),
      why: 'as above',
      plan: 'as above',
    },
    {
      id: '1',
      measure: `beats written while blocked (of ${expected} deadlines)`,
      cells: cellsOf(ctx, pooled, (p) => (p.insideMin === p.insideMedian ? `${p.insideMedian}` : `${p.insideMin}–${p.insideMedian}`)),
      target: `all; setInterval: none`,
      verdict:
        pooled.native && !pooled.native.error && pooled.plain && !pooled.plain.error
          ? pooled.native.insideMin >= expected - 1 && pooled.plain.insideMedian === 0
            ? 'PASS'
            : 'MISS'
          : 'n/a',
      why: pooled.native && !pooled.native.error
        ? `a thread that wakes more than one interval late skips the deadlines it missed instead of beating twice in a row; ${lateness(pooled)}`
        : undefined,
      plan: 'as for the max gap',
    },
    {
      id: '1',
      measure: 'context: cores busy with other processes during the block / heartbeat threads\' total wait for a CPU',
      cells: cellsOf(ctx, pooled, (p, name) => `${p.otherCores.toFixed(2)} / ${name === 'plain' ? '—' : fmtMs(p.threadWaitMs)}`),
      target: 'info',
      verdict: 'info',
    },
    {
      id: '1',
      measure: 'max / p99 gap with the heartbeat thread at SCHED_FIFO 1 (set by the bench with chrt)',
      cells: { native: pooled.fifo.error ? `n/a: ${pooled.fifo.error}` : `${fmtMs(pooled.fifo.maxGap)} / ${fmtMs(pooled.fifo.p99Gap)}` },
      target: 'info (is lateness the scheduler\'s?)',
      verdict: 'info',
    },
  ];
  if (!gate.error) {
    rows.push({
      id: '1',
      measure: `same block with maxStall ${GATE_MAX_STALL} s: beats written / deadlines withheld`,
      cells: { native: `${gate.insideMedian} / ${gate.withheld}` },
      target: 'info (the gate closes)',
      verdict: 'info',
    });
  }
  return {
    rows,
    data: { interval: INTERVAL, maxStall: MAX_STALL, blockMs: BLOCK_MS, rounds, pooled, gate: { maxStall: GATE_MAX_STALL, ...gate } },
  };
}

async function scale(ctx) {
  const COUNT = 100;
  const names = ctx.contenders(['native', 'worker', 'plain']);
  ctx.log(`7. scale: ${COUNT} pulses in one process: ${names.join(', ')}`);
  const runs = await blockedRuns(ctx, plainVariants(names), { rounds: 1, count: COUNT, rss: true });
  const pooled = Object.fromEntries(names.map((n) => [n, pool(runs[n])]));
  const limit = INTERVAL * 1000 + 5;
  const perPulse = (p) => p.rssAdded / COUNT;
  const rows = [
    {
      id: '7',
      measure: `${COUNT} pulses: RSS added per pulse`,
      cells: cellsOf(ctx, pooled, (p) => `${fmtBytes(perPulse(p))} (${fmtBytes(p.rssAdded)} total)`),
      target: '≤ 300 KB',
      verdict: pooled.native && !pooled.native.error ? verdict(perPulse(pooled.native), { op: '<=', limit: 300 * 1024 }) : 'n/a',
    },
    {
      id: '7',
      measure: `${COUNT} pulses: max / p99 gap, loop blocked ${BLOCK_MS / 1000} s`,
      cells: cellsOf(ctx, pooled, (p) => `${fmtMs(p.maxGap)} / ${fmtMs(p.p99Gap)}`),
      target: `max ≤ ${limit} ms`,
      verdict: verdict(pooled.native?.maxGap, { op: '<=', limit }),
      why: lateness(pooled),
      plan: `${LATENESS_PLAN}; one thread serving all the pulses of a process would also wake once per deadline instead of ${COUNT} times`,
    },
    {
      id: '7',
      measure: `${COUNT} pulses: time to start them all`,
      cells: cellsOf(ctx, pooled, (p) => fmtMs(p.startAllMs)),
      target: 'info',
      verdict: 'info',
    },
  ];
  return { rows, data: { count: COUNT, interval: INTERVAL, maxStall: MAX_STALL, blockMs: BLOCK_MS, pooled } };
}

module.exports = { punctuality, scale, analyse, pool };
