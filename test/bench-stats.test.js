'use strict';
// The benchmark's statistics helpers on fixed inputs (no timing involved).
const test = require('node:test');
const assert = require('node:assert/strict');
const stats = require('../bench/lib/stats');

test('percentile interpolates between the nearest ranks', () => {
  const values = [5, 1, 4, 2, 3];
  assert.equal(stats.percentile(values, 0), 1);
  assert.equal(stats.percentile(values, 50), 3);
  assert.equal(stats.percentile(values, 100), 5);
  assert.equal(stats.percentile(values, 25), 2);
  assert.equal(stats.percentile([10, 20], 99), 19.9);
  assert.ok(Number.isNaN(stats.percentile([], 50)));
  assert.deepEqual(values, [5, 1, 4, 2, 3], 'input left unsorted');
});

test('summarize reports the usual figures', () => {
  const s = stats.summarize([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(s.n, 8);
  assert.equal(s.min, 2);
  assert.equal(s.max, 9);
  assert.equal(s.mean, 5);
  assert.equal(s.median, 4.5);
  assert.equal(s.stdev.toFixed(4), '2.1381');
});

test('beatGaps: gaps across the window, hidden beats left out', () => {
  // Beats every 50 ms; the observer missed the one at 150 (count moved by 2).
  const times = [0, 50, 100, 200, 250, 300];
  const counts = [1, 2, 3, 5, 6, 7];
  const { gaps, unobserved } = stats.beatGaps(times, counts, 40, 260, 50);
  assert.deepEqual(gaps, [50, 50, 50, 50]);
  assert.equal(unobserved, 1);
});

test('beatGaps: a late beat counted once is a real gap', () => {
  const { gaps, unobserved } = stats.beatGaps([0, 50, 163, 200], [1, 2, 3, 4], 0, 200, 50);
  assert.deepEqual(gaps, [50, 113, 37]);
  assert.equal(unobserved, 0);
});

test('beatGaps: nothing inside the window is one long gap', () => {
  const { gaps } = stats.beatGaps([0, 3050], [1, 2], 10, 3010, 50);
  assert.deepEqual(gaps, [3050]);
});

test('beatGaps: a count read just before its increment is not a hidden beat', () => {
  // Count lagged at 50 (read 1 instead of 2): the next pair moves by 2 but spans one interval.
  const { gaps, unobserved } = stats.beatGaps([0, 50, 100], [1, 1, 3], 0, 100, 50);
  assert.deepEqual(gaps, [50, 50]);
  assert.equal(unobserved, 0);
});

test('windowGaps and countInside', () => {
  assert.deepEqual(stats.windowGaps([0, 50, 50, 100, 400], 60, 90), [50]);
  assert.equal(stats.countInside([0, 50, 100, 150], 40, 150), 2);
});

test('noise band and paired ratios', () => {
  assert.deepEqual(stats.pairedRatios([100, 200, 50], [110, 180, 50]), [1.1, 0.9, 1]);
  assert.equal(stats.noiseBand([1.02, 0.95, 1.01]).toFixed(2), '0.05');
});

test('verdict', () => {
  assert.equal(stats.verdict(55, { op: '<=', limit: 55 }), 'PASS');
  assert.equal(stats.verdict(55.1, { op: '<=', limit: 55 }), 'MISS');
  assert.equal(stats.verdict(1.03, { op: 'within', limit: 0.05 }), 'PASS');
  assert.equal(stats.verdict(0.9, { op: 'within', limit: 0.05 }), 'MISS');
  assert.equal(stats.verdict(NaN, { op: '<=', limit: 1 }), 'n/a');
  assert.equal(stats.verdict(undefined, { op: '<=', limit: 1 }), 'n/a');
});

test('formatting', () => {
  assert.equal(stats.fmtMs(3050), '3.05 s');
  assert.equal(stats.fmtMs(50.04), '50.0 ms');
  assert.equal(stats.fmtMs(0.0834), '0.083 ms');
  assert.equal(stats.fmtBytes(300 * 1024), '300 KB');
  assert.equal(stats.fmtBytes(10.2 * 1024 * 1024), '10.2 MB');
  assert.equal(stats.fmtRatio(1.004), '+0.4 %');
  assert.equal(stats.fmtRatio(0.98), '−2.0 %');
});

test('strace -c summaries are read per syscall', () => {
  const { parseStraceSummary } = require('../bench/measures/syscalls');
  const text = [
    '% time     seconds  usecs/call     calls    errors syscall',
    '------ ----------- ----------- --------- --------- ----------------',
    ' 61.20    0.004100           3      1052           utimensat',
    ' 30.00    0.002000           1      2104        12 futex',
    '  8.80    0.000590         295         2         1 openat',
    '------ ----------- ----------- --------- --------- ----------------',
    '100.00    0.006690           2      3158        13 total',
  ].join('\n');
  assert.deepEqual(parseStraceSummary(text), { utimensat: 1052, futex: 2104, openat: 2 });
});

test('the README\'s benchmark summary is the one bench/results/latest.json gives', () => {
  const fs = require('node:fs');
  const path = require('node:path');
  const { summaryMarkdown } = require('../bench/lib/report');
  const root = path.join(__dirname, '..');
  const latest = JSON.parse(fs.readFileSync(path.join(root, 'bench', 'results', 'latest.json'), 'utf8'));
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const shown = /<!-- bench:summary:start -->\n([^]*?)<!-- bench:summary:end -->/.exec(readme);
  assert.ok(shown, 'README.md has the bench:summary markers');
  assert.equal(shown[1], summaryMarkdown(latest), 'run `node bench/run.js --render` after a full `npm run bench`');
  assert.ok(latest.machine.commit, 'the results name the commit they measured');
});
