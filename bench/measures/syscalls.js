'use strict';
// 4. Syscalls per healthy beat, counted by `strace -f -c` over >= 1000 beats.
// Each contender runs twice under strace for the same time: beating every
// 10 ms, and with interval 3600 s (one beat). The difference of the counts,
// divided by the difference of the beats, is what one beat costs; startup,
// shutdown and the idle loop cancel out.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runChild, tempDir, commandOutput } = require('../lib/proc');
const { spawnSync } = require('node:child_process');
const { verdict } = require('../lib/stats');

const INTERVAL = 0.01; // the smallest interval the package accepts
const MIN_BEATS = 1000;
const MIN_MS = 10500;

// Syscalls that act on a file or a file descriptor of one. Timer, futex and
// event-loop syscalls are reported separately.
const FILE_SYSCALLS = new Set([
  'open', 'openat', 'openat2', 'creat', 'close', 'read', 'pread64', 'write', 'pwrite64', 'writev',
  'stat', 'lstat', 'fstat', 'newfstatat', 'statx', 'access', 'faccessat', 'faccessat2',
  'utime', 'utimes', 'futimesat', 'utimensat', 'rename', 'renameat', 'renameat2',
  'unlink', 'unlinkat', 'mkdir', 'mkdirat', 'fsync', 'fdatasync', 'ftruncate', 'truncate',
  'chmod', 'fchmod', 'fchmodat', 'readlink', 'readlinkat', 'lseek', 'getdents64',
]);

/** strace's -c table as {syscall: calls}. */
function parseStraceSummary(text) {
  const counts = {};
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // "% time  seconds  usecs/call  calls  [errors]  syscall"
    if (cols.length < 5 || !/^\d/.test(cols[0])) continue;
    const name = cols[cols.length - 1];
    if (name === 'total') continue;
    counts[name] = (counts[name] || 0) + Number(cols[3]);
  }
  return counts;
}

/** strace on PATH, installed with apt-get when missing and possible; else the reason. */
function ensureStrace(log) {
  if (commandOutput('strace', ['-V'])) return null;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !commandOutput('sh', ['-c', 'command -v apt-get'])) {
    return 'strace is not installed and cannot be installed here (needs root and apt-get)';
  }
  log('  strace missing: apt-get install -y strace');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '-q', 'strace'], { env, stdio: 'ignore' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-q'], { env, stdio: 'ignore' });
    r = spawnSync('apt-get', ['install', '-y', '-q', 'strace'], { env, stdio: 'ignore' });
  }
  return commandOutput('strace', ['-V']) ? null : 'strace is not installed and apt-get install strace failed';
}

async function traced(name, interval, dir) {
  const out = path.join(dir, `strace-${name}-${interval}.txt`);
  const run = await runChild(
    'syscalls',
    { contender: name, dir, interval, maxStall: 10, minMs: MIN_MS, minBeats: interval === INTERVAL ? MIN_BEATS : 0 },
    { wrap: ['strace', '-f', '-c', '-o', out], timeoutMs: 120000 },
  );
  if (run.error) return { error: run.error };
  let text;
  try {
    text = fs.readFileSync(out, 'utf8');
  } catch (error) {
    return { error: `no strace output: ${error.message}; ${run.stderr ?? ''}`.trim() };
  }
  return { beats: run.beats, counts: parseStraceSummary(text) };
}

function perBeat(fast, slow) {
  const beats = fast.beats - slow.beats;
  const names = new Set([...Object.keys(fast.counts), ...Object.keys(slow.counts)]);
  const each = {};
  for (const n of names) {
    const d = ((fast.counts[n] || 0) - (slow.counts[n] || 0)) / beats;
    if (Math.abs(d) >= 0.005) each[n] = Number(d.toFixed(3));
  }
  let file = 0;
  let all = 0;
  for (const [n, v] of Object.entries(each)) {
    all += v;
    if (FILE_SYSCALLS.has(n)) file += v;
  }
  return { beats, each, file: Number(file.toFixed(3)), all: Number(all.toFixed(3)) };
}

const describe = (each, onlyFile) =>
  Object.entries(each)
    .filter(([n, v]) => v >= 0.05 && (!onlyFile || FILE_SYSCALLS.has(n)))
    .sort((a, b) => b[1] - a[1])
    .map(([n, v]) => `${n} ${v.toFixed(2)}`)
    .join(', ');

async function syscalls(ctx) {
  const names = ctx.contenders(['native', 'worker', 'plain']);
  const skipped = ensureStrace(ctx.log);
  const row = (cells, verdictValue, note) => ({
    id: '4',
    measure: `file syscalls per healthy beat (strace -f -c, ≥ ${MIN_BEATS} beats)`,
    cells,
    // A look (statx: a regular file is still there, no link or FIFO planted)
    // and a touch (utimensat): docs/internals.md, "The threads".
    target: '2 (statx, utimensat)',
    verdict: verdictValue,
    note,
  });
  if (skipped) {
    ctx.log(`4. syscalls: skipped: ${skipped}`);
    return { rows: [row({}, 'n/a', `skipped: ${skipped}`)], data: { skipped } };
  }
  ctx.log(`4. syscalls: ${names.join(', ')} under strace, ${MIN_BEATS}+ beats at ${INTERVAL * 1000} ms vs one beat, all at once`);
  const dir = tempDir('strace');
  // All runs at once: counts, unlike timings, do not suffer from sharing the CPU.
  const results = await Promise.all(names.map((n) => Promise.all([traced(n, INTERVAL, dir), traced(n, 3600, dir)])));
  fs.rmSync(dir, { recursive: true, force: true });
  const per = {};
  const errors = {};
  names.forEach((n, i) => {
    const [fast, slow] = results[i];
    if (fast.error || slow.error) errors[n] = fast.error || slow.error;
    else per[n] = perBeat(fast, slow);
  });
  for (const n of names) {
    if (per[n]) ctx.log(`  ${n}: ${per[n].beats} beats; file syscalls/beat ${per[n].file} (${describe(per[n].each, true)}); all ${per[n].all}`);
    else ctx.log(`  ${n}: ${errors[n]}`);
  }
  const cells = (format) => {
    const out = {};
    for (const name of ctx.columns) {
      if (name === 'worker' && ctx.workerPending) out[name] = 'pending';
      else if (per[name]) out[name] = format(per[name]);
      else if (errors[name]) out[name] = 'error';
    }
    return out;
  };
  const nativeFile = per.native ? Math.round(per.native.file * 100) / 100 : NaN;
  return {
    rows: [
      row(cells((p) => `${p.file.toFixed(2)} (${describe(p.each, true)})`), verdict(nativeFile, { op: '<=', limit: 2 })),
      {
        id: '4',
        measure: 'all syscalls per healthy beat, any thread',
        cells: cells((p) => `${p.all.toFixed(2)} (${describe(p.each, false)})`),
        target: 'info',
        verdict: 'info',
      },
    ],
    data: { interval: INTERVAL, minBeats: MIN_BEATS, strace: commandOutput('strace', ['-V'])?.split('\n')[0], perBeat: per, errors, host: os.release() },
  };
}

module.exports = { syscalls, parseStraceSummary };
