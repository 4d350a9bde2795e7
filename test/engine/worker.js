'use strict';
// The engine test's worker.js, the file the README image's CMD runs. It has no
// pulse code: the preload in NODE_OPTIONS starts the pulse, as in the README.
//   ENGINE_WORKER=busy   holds the event loop in synchronous blocks of half of
//                        maxStall, over and over, yielding briefly between them
//   ENGINE_WORKER=stuck  the same for ENGINE_STUCK_AFTER_MS, then never yields
//                        again (crunchForever)
const mode = process.env.ENGINE_WORKER;
if (mode !== 'busy' && mode !== 'stuck') throw new Error(`ENGINE_WORKER must be busy or stuck, got ${mode}`);
const maxStallMs = Number(process.env.CELERY_PULSE_MAX_STALL) * 1000;
const blockMs = maxStallMs / 2;
const stuckAfterMs = Number(process.env.ENGINE_STUCK_AFTER_MS ?? 8000);
const startedAt = Date.now();

function block(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

function crunchForever() {
  let x = 1;
  for (;;) x = (x * 48271) % 2147483647;
}

function round() {
  if (mode === 'stuck' && Date.now() - startedAt >= stuckAfterMs) {
    console.log(`engine-worker: stuck at ${Date.now()} (${new Date().toISOString()})`);
    crunchForever();
  }
  block(blockMs);
  setTimeout(round, 50);
}

console.log(`engine-worker: ${mode}, pid ${process.pid}, blocks of ${blockMs} ms${mode === 'stuck' ? `, stuck after ${stuckAfterMs} ms` : ''}`);
setTimeout(round, 50);
