'use strict';
// Statistics and verdict helpers for the benchmarks. Pure functions on plain
// numbers, so test/bench-stats.test.js can check them on fixed inputs.

/** Ascending copy of `values` (numbers only). */
function sorted(values) {
  return Float64Array.from(values).sort();
}

/**
 * The p-th percentile (0..100) of `values`, linearly interpolated between the
 * two nearest ranks. NaN for an empty list.
 */
function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = sorted(values);
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

const median = (values) => percentile(values, 50);

function mean(values) {
  if (values.length === 0) return NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample standard deviation (n - 1). */
function stdev(values) {
  if (values.length < 2) return NaN;
  const m = mean(values);
  let sq = 0;
  for (const v of values) sq += (v - m) ** 2;
  return Math.sqrt(sq / (values.length - 1));
}

/** The usual summary of a sample. */
function summarize(values) {
  return {
    n: values.length,
    min: values.length ? Math.min(...values) : NaN,
    median: median(values),
    mean: mean(values),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.length ? Math.max(...values) : NaN,
    stdev: stdev(values),
  };
}

/** Differences between successive distinct values of `times`, in time order. */
function gaps(times) {
  const s = [...new Set(times)].sort((a, b) => a - b);
  const out = [];
  for (let i = 1; i < s.length; i++) out.push(s[i] - s[i - 1]);
  return out;
}

/**
 * Gaps between successive beats that overlap the window [from, to]: the beat
 * before the window, every beat inside it and the first beat after it all
 * count, so a heartbeat that beats nothing inside the window shows one gap at
 * least as long as the window.
 */
function windowGaps(times, from, to) {
  const s = [...new Set(times)].sort((a, b) => a - b);
  const out = [];
  for (let i = 1; i < s.length; i++) {
    if (s[i] > from && s[i - 1] < to) out.push(s[i] - s[i - 1]);
  }
  return out;
}

/**
 * Like windowGaps, for beat times observed in order with the heartbeat's beat
 * count at each (`counts`, or null when unknown). A pair whose count moved by
 * two or more and whose gap spans at least 1.5 intervals hid a beat from the
 * observer: it is not a gap between successive beats, so it is left out and
 * counted in `unobserved` (the beats it hid).
 */
function beatGaps(times, counts, from, to, interval) {
  const gaps = [];
  let unobserved = 0;
  for (let i = 1; i < times.length; i++) {
    if (!(times[i] > from && times[i - 1] < to)) continue;
    const gap = times[i] - times[i - 1];
    const moved = counts && counts[i] !== null && counts[i - 1] !== null ? counts[i] - counts[i - 1] : 1;
    if (moved >= 2 && gap >= 1.5 * interval) {
      unobserved += moved - 1;
      continue;
    }
    gaps.push(gap);
  }
  return { gaps, unobserved };
}

/** How many of `times` fall strictly inside (from, to). */
function countInside(times, from, to) {
  let n = 0;
  for (const t of new Set(times)) if (t > from && t < to) n++;
  return n;
}

/**
 * Noise band of an A/A comparison: the largest relative deviation from 1 of
 * the ratios between two runs of the same thing.
 */
function noiseBand(aaRatios) {
  if (aaRatios.length === 0) return NaN;
  return Math.max(...aaRatios.map((r) => Math.abs(r - 1)));
}

/** Element-wise ratios b[i] / a[i] of paired runs. */
function pairedRatios(a, b) {
  const n = Math.min(a.length, b.length);
  const out = [];
  for (let i = 0; i < n; i++) out.push(b[i] / a[i]);
  return out;
}

/**
 * PASS or MISS of `value` against `target` = {op, limit}; op is one of
 * '<=', '>=', '==', 'within' (|value - 1| <= limit, for ratios).
 * Missing measurements (NaN, null, undefined) are neither: 'n/a'.
 */
function verdict(value, target) {
  if (value === null || value === undefined || (typeof value === 'number' && Number.isNaN(value))) return 'n/a';
  const { op, limit } = target;
  let ok;
  if (op === '<=') ok = value <= limit;
  else if (op === '>=') ok = value >= limit;
  else if (op === '==') ok = value === limit;
  else if (op === 'within') ok = Math.abs(value - 1) <= limit;
  else throw new Error(`unknown target op ${op}`);
  return ok ? 'PASS' : 'MISS';
}

/** "50.4 ms", "0.083 ms", "3.05 s": milliseconds with sensible digits. */
function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return 'n/a';
  const a = Math.abs(ms);
  if (a >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (a >= 100) return `${ms.toFixed(0)} ms`;
  if (a >= 10) return `${ms.toFixed(1)} ms`;
  if (a >= 1) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(3)} ms`;
}

/** "180 KB", "10.2 MB" (1 KB = 1024 bytes), signed. */
function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(bytes)) return 'n/a';
  const a = Math.abs(bytes);
  if (a >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.round(bytes / 1024)} KB`;
}

/** "+0.4 %" from a ratio 1.004. */
function fmtRatio(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return 'n/a';
  const pct = (r - 1) * 100;
  return `${pct >= 0 ? '+' : '−'}${Math.abs(pct).toFixed(1)} %`;
}

module.exports = {
  percentile,
  median,
  mean,
  stdev,
  summarize,
  gaps,
  windowGaps,
  beatGaps,
  countInside,
  noiseBand,
  pairedRatios,
  verdict,
  fmtMs,
  fmtBytes,
  fmtRatio,
};
