#!/usr/bin/env node
'use strict';
// `npm run bench`: every measure side by side in one run, each against the
// heartbeat a user would otherwise write, each printed against its target.
// Writes bench/results/latest.{json,md} and timeline.svg (a partial run, with
// --only or --quick, writes to bench/results/tmp/ instead).
// A full run also refreshes the results in docs/benchmarks.md, between its
// <!-- bench:results --> markers, and the README's five-row summary, between
// its <!-- bench:summary --> markers. --render redoes the outputs from
// bench/results/latest.json without measuring.
//   node bench/run.js [--quick] [--only=1,3,5] [--render]
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { machine, tempDir } = require('./lib/proc');
const { PKG } = require('./lib/contenders');
const { markdown, consoleTable, machineLine, summaryMarkdown } = require('./lib/report');
const { timelineSvg, punctualityRows } = require('./lib/svg');
const { punctuality, scale } = require('./measures/punctuality');
const { memory } = require('./measures/memory');
const { lifecycle } = require('./measures/lifecycle');
const { syscalls } = require('./measures/syscalls');
const { loop } = require('./measures/loop');
const { cli } = require('./measures/cli');
const { diagnosis } = require('./measures/diagnosis');
const { endpoint } = require('./measures/endpoint');
const { nativeStack } = require('./measures/native-stack');

const MEASURES = [
  ['1', punctuality],
  ['2', memory],
  ['3', lifecycle],
  ['4', syscalls],
  ['5', loop],
  ['6', cli],
  ['7', scale],
  ['8', diagnosis],
  ['9', endpoint],
  ['10', nativeStack],
];

function parseArgs(argv) {
  const opts = { quick: false, only: null, render: false };
  for (const arg of argv) {
    if (arg === '--quick') opts.quick = true;
    else if (arg === '--render') opts.render = true;
    else if (arg.startsWith('--only')) opts.only = arg.split('=')[1]?.split(',') ?? null;
    else throw new Error(`unknown argument ${arg} (use --quick, --only=1,2, --render)`);
  }
  return opts;
}

/** null when start({strategy: 'worker'}) works here, else why not. */
function workerPendingReason() {
  const dir = tempDir('probe');
  const file = path.join(dir, 'probe');
  const source =
    `try { require(${JSON.stringify(PKG)}).start({ strategy: 'worker', file: ${JSON.stringify(file)}, interval: 3600 }).stop(); }\n` +
    `catch (e) { console.log(\`\${e.code || e.name}: \${e.message}\`); process.exit(1); }`;
  const r = spawnSync(process.execPath, ['-e', source], { encoding: 'utf8', timeout: 30000 });
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status === 0) return null;
  const why = (r.stdout || '').trim().replace('celery-pulse-native: ', '') || (r.stderr || '').trim().split('\n')[0] || `exit ${r.status}`;
  return `start({ strategy: 'worker' }) fails on this build (${why})`;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.render) return render();
  if (!fs.existsSync(path.join(PKG, 'dist', 'index.js'))) {
    console.error('dist/ is missing: run `npm run build` first');
    process.exit(2);
  }
  const t0 = performance.now();
  const info = machine(PKG);
  console.log(`celery-pulse-native benchmarks on ${machineLine(info)}`);
  const workerPending = workerPendingReason();
  if (workerPending) console.log(`worker strategy: pending (${workerPending})`);
  const ctx = {
    quick: opts.quick,
    log: (line) => console.log(line),
    workerPending,
    columns: ['native', 'worker', 'plain'],
    contenders: (names) => names.filter((n) => n !== 'worker' || !workerPending),
  };

  const rows = [];
  const data = {};
  for (const [id, measure] of MEASURES) {
    if (opts.only && !opts.only.includes(id)) continue;
    const t = performance.now();
    try {
      const result = await measure(ctx);
      rows.push(...result.rows);
      data[measure.name] = result.data;
    } catch (error) {
      console.error(`measure ${id} failed: ${error.stack}`);
      rows.push({ id, measure: `${measure.name} (failed)`, cells: {}, target: '', verdict: 'n/a', note: String(error.message) });
    }
    console.log(`   (${((performance.now() - t) / 1000).toFixed(1)} s)`);
  }
  const durationS = (performance.now() - t0) / 1000;
  const generatedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');

  // Only a complete, full-length run replaces the committed results.
  const partial = Boolean(opts.only) || opts.quick;
  const outDir = path.join(__dirname, 'results', partial ? 'tmp' : '');
  const summary = { generatedAt, durationS, quick: opts.quick, machine: info, workerPending, rows, data };
  writeOutputs(summary, outDir, !partial);
  console.log('\n' + consoleTable(rows));
  console.log(`\nwrote ${path.relative(process.cwd(), outDir) || '.'}/latest.{json,md}${data.punctuality ? ', timeline.svg' : ''}` +
    `${partial ? '' : ', docs/benchmarks.md results, README.md summary'} in ${durationS.toFixed(0)} s`);
}

const RESULTS_PAGE = path.join(PKG, 'docs', 'benchmarks.md');
const MARK_START = '<!-- bench:results:start -->';
const MARK_END = '<!-- bench:results:end -->';
const README = path.join(PKG, 'README.md');
const SUMMARY_START = '<!-- bench:summary:start -->';
const SUMMARY_END = '<!-- bench:summary:end -->';
/** Replaces what lies between two markers of a file, when it has both. */
function replaceBetween(file, start, end, body) {
  if (!fs.existsSync(file)) return;
  const text = fs.readFileSync(file, 'utf8');
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a >= 0 && b > a) fs.writeFileSync(file, text.slice(0, a) + `${start}\n${body}${end}` + text.slice(b + end.length));
}

/** latest.json, latest.md, timeline.svg; with `readme`, docs/benchmarks.md's results and the README's summary too. */
function writeOutputs(summary, outDir, readme) {
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'latest.json'), JSON.stringify(summary, null, 1) + '\n');
  const md = markdown(summary);
  fs.writeFileSync(path.join(outDir, 'latest.md'), md);
  const d = summary.data.punctuality;
  if (d) {
    const info = summary.machine;
    const svg = timelineSvg({
      title: `Heartbeats while the event loop is blocked for ${d.blockMs / 1000} s (interval ${d.interval * 1000} ms)`,
      blockMs: d.blockMs,
      rows: punctualityRows(d, summary.workerPending),
      footer: `${info.nproc} × ${info.cpuModel}, ${info.kernel}, Node ${info.node}, ${summary.generatedAt}`,
    });
    fs.writeFileSync(path.join(outDir, 'timeline.svg'), svg);
  }
  if (readme) {
    replaceBetween(RESULTS_PAGE, MARK_START, MARK_END, `${md}\n![Beat timeline while the event loop is blocked](../bench/results/timeline.svg)\n`);
    replaceBetween(README, SUMMARY_START, SUMMARY_END, summaryMarkdown(summary));
  }
}

async function render() {
  const file = path.join(__dirname, 'results', 'latest.json');
  const summary = JSON.parse(fs.readFileSync(file, 'utf8'));
  writeOutputs(summary, path.dirname(file), true);
  console.log(consoleTable(summary.rows));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
