'use strict';
// Writes docs/architecture.svg, the one picture of docs/internals.md, by hand:
// boxes and arrows at fixed positions, no dependencies. Run
// `node docs/architecture.js` after changing it; test/readme.test.js fails
// when the committed SVG is not what this file writes.
const fs = require('node:fs');
const path = require('node:path');

const W = 960;
const H = 680;
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const BOXES = {
  js: { x: 40, y: 90, w: 250, h: 130, fill: '#e8f0fe', title: 'JS thread: the event loop', lines: ['your worker\'s code, its', 'track() labels and expectStall()', 'an unref\'d timer every', 'min(1 s, maxStall / 4): answer()'] },
  shared: { x: 380, y: 100, w: 220, h: 100, fill: '#fef7e0', title: 'shared state', lines: ['last answer, monotonic clock:', 'an atomic (native) or a', 'SharedArrayBuffer (worker)'] },
  beat: { x: 380, y: 250, w: 220, h: 230, fill: '#e6f4ea', title: 'heartbeat thread', lines: ['one per pulse; wakes at', 'start + k × interval', '', 'Heartbeat::Tick: did the', 'loop answer within maxStall?', 'yes: a beat (statx, utimensat)', 'no: withhold the beat and', 'write the record'] },
  stack: { x: 40, y: 250, w: 250, h: 62, fill: '#f3e8fd', title: 'stack binary (per Node ABI)', lines: ['V8 interrupt, bounded wait'] },
  proc: { x: 40, y: 332, w: 250, h: 62, fill: '#f3e8fd', title: '/proc/self/task/<tid>', lines: ['state, CPU, syscall, wchan, fd'] },
  stderr: { x: 40, y: 414, w: 250, h: 66, fill: '#fce8e6', title: 'stderr', lines: ['the stall block'] },
  orch: { x: 680, y: 90, w: 260, h: 70, fill: '#ffffff', title: 'Docker HEALTHCHECK / kubelet', lines: ['restarts the worker on failures'] },
  probe: { x: 680, y: 210, w: 260, h: 70, fill: '#ffffff', title: 'celery-pulse-native check', lines: ['or the shell probe (mtime age)'] },
  file: { x: 680, y: 330, w: 260, h: 90, fill: '#ffffff', title: 'the healthcheck file', lines: ['mtime: alive and answering', 'content: one line of JSON,', 'the record (why it is stale)'] },
  signal: { x: 40, y: 500, w: 250, h: 80, fill: '#f3e8fd', title: 'nativeStack: a real-time signal', lines: ['outside JavaScript: pc, frame', 'pointers, stack words; bounded'] },
  server: { x: 380, y: 510, w: 220, h: 100, fill: '#e6f4ea', title: 'endpoint thread (listen)', lines: ['poll(), non-blocking;', '/livez, /metrics, /status from', 'the counters and the record'] },
  http: { x: 680, y: 510, w: 260, h: 100, fill: '#ffffff', title: 'kubelet httpGet / Prometheus', lines: ['/livez: 200 or 503 with', 'check\'s line; /metrics', 'answered while the loop is stuck'] },
};

// [from, fromSide, to, toSide, label, dashed]
const ARROWS = [
  ['js', 'right', 'shared', 'left', 'answer()', false],
  ['shared', 'bottom', 'beat', 'top', 'at each deadline', false],
  ['beat', 'left', 'stack', 'right', 'capture', false],
  ['stack', 'top', 'js', 'bottom', 'interrupt', true],
  ['beat', 'left', 'proc', 'right', 'read', false],
  ['beat', 'left', 'stderr', 'right', 'write', false],
  ['beat', 'right', 'file', 'left', 'beat, record', false],
  ['orch', 'bottom', 'probe', 'top', 'runs', false],
  ['probe', 'bottom', 'file', 'top', 'reads mtime and record', false],
  ['beat', 'bottom', 'signal', 'right', 'capture', false],
  ['http', 'left', 'server', 'right', 'HTTP', false],
  ['server', 'top', 'beat', 'bottom', 'reads', true],
];

/** Where an arrow leaves or meets a box; a sideways arrow runs level, at the smaller box's middle. */
function ends(from, fromSide, to, toSide) {
  const a = BOXES[from];
  const b = BOXES[to];
  if ((fromSide === 'left' || fromSide === 'right') && (toSide === 'left' || toSide === 'right')) {
    const small = a.h <= b.h ? a : b;
    const y = small.y + small.h / 2;
    return [[fromSide === 'left' ? a.x : a.x + a.w, y], [toSide === 'left' ? b.x : b.x + b.w, y]];
  }
  return [anchor(from, fromSide), anchor(to, toSide)];
}

function anchor(box, side) {
  const b = BOXES[box];
  if (side === 'left') return [b.x, b.y + b.h / 2];
  if (side === 'right') return [b.x + b.w, b.y + b.h / 2];
  if (side === 'top') return [b.x + b.w / 2, b.y];
  return [b.x + b.w / 2, b.y + b.h];
}

function render() {
  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="ui-sans-serif, system-ui, sans-serif" font-size="13">`);
  out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>');
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="20" y="28" font-size="16" font-weight="600" fill="#111">${esc('celery-pulse-native: a gated heartbeat (native strategy)')}</text>`);
  // The process around the threads, the orchestrator's side outside it.
  out.push('<rect x="20" y="50" width="600" height="580" rx="10" fill="none" stroke="#888" stroke-dasharray="6 4"/>');
  out.push(`<text x="36" y="72" fill="#555">${esc('one Node.js process (one heartbeat thread per pulse)')}</text>`);
  out.push(`<text x="680" y="72" fill="#555">${esc('the container\'s orchestrator')}</text>`);
  for (const b of Object.values(BOXES)) {
    out.push(`<rect x="${b.x}" y="${b.y}" width="${b.w}" height="${b.h}" rx="6" fill="${b.fill}" stroke="#555"/>`);
    out.push(`<text x="${b.x + 12}" y="${b.y + 22}" font-weight="600" fill="#111">${esc(b.title)}</text>`);
    b.lines.forEach((line, i) => out.push(`<text x="${b.x + 12}" y="${b.y + 42 + i * 18}" fill="#333">${esc(line)}</text>`));
  }
  for (const [from, fromSide, to, toSide, label, dashed] of ARROWS) {
    const [[x1, y1], [x2, y2]] = ends(from, fromSide, to, toSide);
    const dash = dashed ? ' stroke-dasharray="5 4"' : '';
    out.push(`<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="#444" stroke-width="1.5"${dash} marker-end="url(#arrow)"/>`);
    const horizontal = Math.abs(x2 - x1) > Math.abs(y2 - y1);
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    const attrs = horizontal ? `x="${mx}" y="${my - 6}" text-anchor="middle"` : `x="${mx + 8}" y="${my + 4}"`;
    out.push(`<text ${attrs} font-size="11" fill="#444">${esc(label)}</text>`);
  }
  out.push(`<text x="20" y="526" font-size="12" fill="#555">${esc('worker strategy: the heartbeat thread is a worker_threads Worker running the same loop in JavaScript (src/worker/);')}</text>`);
  out.push(`<text x="20" y="544" font-size="12" fill="#555">${esc('it shares the gate through a SharedArrayBuffer, reads /proc the same way, and has no stack binary.')}</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

const OUT = path.join(__dirname, 'architecture.svg');

if (require.main === module) {
  fs.writeFileSync(OUT, render());
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}

module.exports = { render, OUT };
