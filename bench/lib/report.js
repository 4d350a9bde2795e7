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

module.exports = { markdown, consoleTable, machineLine };
