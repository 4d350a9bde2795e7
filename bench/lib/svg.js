'use strict';
// The beat timeline chart (bench/results/timeline.svg), written by hand:
// one row per heartbeat, a tick per beat, the blocked span shaded.
const { fmtMs } = require('./stats');

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * rows: [{label, sublabel, color, beats: [ms relative to block start] | null,
 *         summary, pending}]
 */
function timelineSvg({ title, blockMs, rows, footer, fromMs = -400, toMs = blockMs + 400 }) {
  const W = 1000;
  const left = 220;
  const right = 230;
  const top = 64;
  const rowH = 58;
  const plotW = W - left - right;
  const H = top + rows.length * rowH + 64;
  const x = (ms) => left + ((ms - fromMs) / (toMs - fromMs)) * plotW;
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="ui-sans-serif, system-ui, sans-serif" font-size="13">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="24" font-size="16" font-weight="600" fill="#111">${esc(title)}</text>`);
  // Blocked span.
  const bx = x(0);
  const bw = x(blockMs) - bx;
  const plotBottom = top + rows.length * rowH;
  out.push(`<rect x="${bx.toFixed(1)}" y="${top - 14}" width="${bw.toFixed(1)}" height="${plotBottom - top + 14}" fill="#fdecea"/>`);
  out.push(`<text x="${(bx + bw / 2).toFixed(1)}" y="${top - 2}" text-anchor="middle" fill="#b3261e">event loop blocked (busy loop, ${(blockMs / 1000).toFixed(1)} s)</text>`);

  rows.forEach((row, i) => {
    const y = top + i * rowH + rowH / 2 + 6;
    out.push(`<text x="${left - 12}" y="${y - 3}" text-anchor="end" font-weight="600" fill="#111">${esc(row.label)}</text>`);
    if (row.sublabel) out.push(`<text x="${left - 12}" y="${y + 13}" text-anchor="end" fill="#555" font-size="11">${esc(row.sublabel)}</text>`);
    out.push(`<line x1="${left}" y1="${y + 10}" x2="${left + plotW}" y2="${y + 10}" stroke="#ccc"/>`);
    if (row.pending || !row.beats) {
      out.push(`<text x="${left + plotW / 2}" y="${y + 4}" text-anchor="middle" fill="#777" font-style="italic">${esc(row.pending || 'no data')}</text>`);
    } else {
      for (const t of row.beats) {
        if (t < fromMs || t > toMs) continue;
        const tx = x(t).toFixed(1);
        out.push(`<line x1="${tx}" y1="${y - 12}" x2="${tx}" y2="${y + 10}" stroke="${row.color}" stroke-width="1.5"/>`);
      }
    }
    if (row.summary) {
      const lines = [].concat(row.summary);
      lines.forEach((line, j) => {
        out.push(`<text x="${left + plotW + 12}" y="${y - 3 + j * 15}" fill="#333" font-size="12">${esc(line)}</text>`);
      });
    }
  });

  // Time axis.
  const axisY = plotBottom + 8;
  out.push(`<line x1="${left}" y1="${axisY}" x2="${left + plotW}" y2="${axisY}" stroke="#333"/>`);
  for (let t = Math.ceil(fromMs / 500) * 500; t <= toMs; t += 500) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${axisY}" x2="${tx}" y2="${axisY + 5}" stroke="#333"/>`);
    out.push(`<text x="${tx}" y="${axisY + 19}" text-anchor="middle" fill="#333" font-size="11">${(t / 1000).toFixed(1)} s</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${axisY + 36}" text-anchor="middle" fill="#555" font-size="11">time since the loop was blocked; each tick is a new mtime seen by polling stat() inside the blocked process (per row, the run with the largest gap)</text>`);
  if (footer) out.push(`<text x="${W - 10}" y="${H - 8}" text-anchor="end" fill="#888" font-size="10">${esc(footer)}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The chart's rows from the punctuality measure's data. */
function punctualityRows(data, workerPending) {
  const p = data.pooled;
  // The chart shows, per row, the run with the largest gap.
  const summary = (x) => {
    if (!x || x.error) return ['error'];
    const w = x.worst ?? { maxGap: x.maxGap, inside: x.insideMedian, unobserved: 0 };
    const lines = [`${w.inside} beats while blocked`, `max gap ${fmtMs(w.maxGap)}`];
    if (w.unobserved) lines.push(`(${w.unobserved} not seen by the poller)`);
    return lines;
  };
  const rows = [
    { label: 'native', sublabel: `strategy 'native', maxStall ${data.maxStall} s`, color: '#1a7f37', beats: p.native?.timeline, summary: summary(p.native) },
    {
      label: 'worker',
      sublabel: `strategy 'worker', maxStall ${data.maxStall} s`,
      color: '#0969da',
      beats: p.worker?.timeline,
      summary: workerPending ? null : summary(p.worker),
      pending: workerPending ? 'pending: start({ strategy: \'worker\' }) does not work in this build yet' : null,
    },
    { label: 'setInterval + utimesSync', sublabel: 'what a user would write', color: '#cf222e', beats: p.plain?.timeline, summary: summary(p.plain) },
  ];
  if (p.fifo && !p.fifo.error) {
    rows.push({
      label: 'native, SCHED_FIFO',
      sublabel: 'thread priority lifted by the bench',
      color: '#116329',
      beats: p.fifo.timeline,
      summary: summary(p.fifo),
    });
  }
  if (data.gate && !data.gate.error) {
    rows.push({
      label: 'native, gate closing',
      sublabel: `maxStall ${data.gate.maxStall} s: beats withheld`,
      color: '#8250df',
      beats: data.gate.timeline,
      summary: [`${data.gate.worst?.inside ?? data.gate.insideMedian} beats while blocked`, `${data.gate.withheld} deadlines withheld`],
    });
  }
  return rows;
}

module.exports = { timelineSvg, punctualityRows };
