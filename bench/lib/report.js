'use strict';
// The results table, as markdown (bench/results/latest.md) and on the console.

const COLUMNS = [
  ['native', 'native'],
  ['worker', 'worker'],
  ['plain', 'setInterval + utimesSync'],
];

const cell = (s) => String(s ?? '—').replace(/\|/g, '\\|');

function machineLine(m) {
  return `${m.nproc} × ${m.cpuModel}, ${m.kernel} (${m.arch}${m.glibc ? `, glibc ${m.glibc}` : ''}), Node ${m.node}, ` +
    `${m.memTotalMB} MB RAM, healthcheck files on ${m.tmpFs ?? '?'} (${m.tmpdir}), load average at start ${m.loadavg.join(' ')}`;
}

function markdown({ rows, machine, generatedAt, durationS, workerPending, quick }) {
  const lines = [];
  lines.push(`Measured ${generatedAt} on ${machineLine(machine)}; commit ${machine.commit ?? '?'}; ` +
    `\`npm run bench\` took ${durationS.toFixed(0)} s${quick ? ' (--quick)' : ''}.`);
  lines.push('');
  lines.push(`| # | Measure | ${COLUMNS.map(([, title]) => title).join(' | ')} | Target (native) | Result |`);
  lines.push(`|---|---|${COLUMNS.map(() => '---').join('|')}|---|---|`);
  for (const r of rows) {
    const cells = COLUMNS.map(([key]) => cell(r.cells[key]));
    lines.push(`| ${r.id} | ${cell(r.measure)} | ${cells.join(' | ')} | ${cell(r.target)} | **${r.verdict}** |`);
  }
  const notes = rows.filter((r) => r.note || (r.verdict === 'MISS' && r.why));
  if (notes.length || workerPending) {
    lines.push('');
    if (workerPending) lines.push(`- worker: pending (${workerPending}); the column fills in once \`start({ strategy: 'worker' })\` works.`);
    for (const r of notes) {
      if (r.note) lines.push(`- ${r.id}, ${r.measure}: ${r.note}`);
      if (r.verdict === 'MISS' && r.why) lines.push(`- ${r.id}, MISS (${r.measure}): ${r.why}.${r.plan ? ` What would reach it: ${r.plan}.` : ''}`);
    }
  }
  return lines.join('\n') + '\n';
}

function consoleTable(rows) {
  const out = [];
  for (const r of rows) {
    const cells = COLUMNS.filter(([key]) => r.cells[key] !== undefined)
      .map(([key, title]) => `${title}: ${r.cells[key]}`)
      .join(' | ');
    out.push(`${r.verdict.padEnd(7)} [${r.id}] ${r.measure}`);
    out.push(`        ${cells}   (target ${r.target})`);
    if (r.verdict === 'MISS' && r.why) out.push(`        why: ${r.why}`);
    if (r.verdict === 'MISS' && r.plan) out.push(`        what would reach it: ${r.plan}`);
  }
  return out.join('\n');
}

// The README's rows: [label shown (null: the measure's own), the measure, by its text].
const SUMMARY_ROWS = [
  [null, /^max gap between beats, loop blocked/],
  [null, /^beats written while blocked/],
  ['RSS added by start(), private (anonymous) part', /^… of which anonymous/],
  ['file syscalls per healthy beat', /^file syscalls per healthy beat/],
  ['main-thread CPU cost on 10⁶ setImmediate hops', /^A\/B .* setImmediate hops/],
  ['/metrics scrape while the loop is blocked', /^\/metrics scrape latency, loop blocked/],
  [null, /^time the stuck thread spends in the native stack capture/],
];

/** The README's summary: rows of the full table, with a link to it. */
function summaryMarkdown(summary) {
  const lines = [
    `From \`npm run bench\` of ${summary.generatedAt.slice(0, 10)} (commit ${summary.machine.commit ?? '?'}; ` +
      `the machine, every row and each MISS explained are in [docs/benchmarks.md](docs/benchmarks.md)):`,
    '',
    '| measure | native | setInterval + utimesSync | target | result |',
    '|---|---|---|---|---|',
  ];
  for (const [label, pattern] of SUMMARY_ROWS) {
    const row = summary.rows.find((r) => pattern.test(r.measure));
    if (!row) continue;
    const cell = (v) => String(v ?? '—').replace(/\|/g, '\\|');
    lines.push(`| ${cell(label ?? row.measure)} | ${cell(row.cells.native)} | ${cell(row.cells.plain)} | ${cell(row.target)} | **${row.verdict}** |`);
  }
  return lines.join('\n') + '\n';
}

module.exports = { markdown, consoleTable, machineLine, summaryMarkdown, SUMMARY_ROWS };
