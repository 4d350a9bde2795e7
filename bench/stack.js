#!/usr/bin/env node
'use strict';
// What a stack capture costs the stuck thread (the time the interrupt
// callback runs on it) and how long the heartbeat thread waits for the
// answer, for a thread spinning in JavaScript 3 and 30 calls deep.
//   node bench/stack.js [--repeat=100] [--gap=10]
// Run it with another node binary to measure that Node's stack binary.
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const opts = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const repeat = Number(opts.repeat || 100);
const gap = Number(opts.gap || 10);

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const us = (ns) => (ns / 1000).toFixed(1).padStart(8);

for (const depth of [3, 30]) {
  const child = spawnSync(process.execPath, [path.join(__dirname, 'child', 'stack.js'), repeat, gap, depth], {
    encoding: 'utf8', timeout: 120000, killSignal: 'SIGKILL',
  });
  if (child.status !== 0) {
    console.error(`bench/stack: the child failed (${child.status ?? child.signal}): ${child.stderr}`);
    process.exit(1);
  }
  const { node, records } = JSON.parse(child.stdout);
  const bad = records.filter((r) => r.code !== 0);
  if (bad.length > 0) {
    console.error(`bench/stack: ${bad.length} captures did not answer: ${JSON.stringify(bad[0])}`);
    process.exit(1);
  }
  const first = records[0];
  const rest = records.slice(1);
  const cb = rest.map((r) => r.interruptNs).sort((a, b) => a - b);
  const wait = rest.map((r) => r.elapsedNs).sort((a, b) => a - b);
  console.log(`node ${node} ${process.arch}, ${depth} calls deep (${first.count} frames), ${records.length} captures ${gap} ms apart`);
  console.log(`  first capture:   callback ${us(first.interruptNs)} us, request to answer ${us(first.elapsedNs)} us`);
  console.log(`  callback on the stuck thread (us): median ${us(quantile(cb, 0.5))}  p95 ${us(quantile(cb, 0.95))}  max ${us(cb[cb.length - 1])}`);
  console.log(`  request to answer (us):            median ${us(quantile(wait, 0.5))}  p95 ${us(quantile(wait, 0.95))}  max ${us(wait[wait.length - 1])}`);
}
