'use strict';
// require() time, the first start() in a fresh process, then many start/stop
// cycles with interval 3600 s (the thread sleeps on its deadline, so stop()
// measures waking and joining it, plus the final record).
const fs = require('node:fs');
const path = require('node:path');
const { run, mtimeMs, contention } = require('../lib/child');
const { PKG, contender } = require('../lib/contenders');

run(async ({ contender: name, dir, cycles, breakdown = false }) => {
  const r0 = performance.now();
  require(PKG);
  const requireMs = performance.now() - r0;
  const c = contender(name);
  // With `breakdown`, the addon is loaded step by step before the first
  // start(), the way the package's loader does it, timing each step.
  let phases = null;
  if (breakdown) {
    const t = [performance.now()];
    const lookup = require(require.resolve('node-gyp-build', { paths: [PKG] }));
    t.push(performance.now());
    const addonPath = lookup.resolve(PKG);
    t.push(performance.now());
    require(addonPath);
    t.push(performance.now());
    phases = { requireLoaderMs: t[1] - t[0], findPrebuildMs: t[2] - t[1], dlopenMs: t[3] - t[2] };
  }

  const coldFile = path.join(dir, 'cold');
  const wallBefore = Date.now();
  const s0 = performance.now();
  const cold = c.start({ file: coldFile, interval: 3600 });
  const coldStartMs = performance.now() - s0;
  // The first beat is inside start() when the file is already fresh as it
  // returns. Kernel timestamps may trail Date.now() by a clock tick: 10 ms slack.
  const firstMtime = mtimeMs(coldFile);
  const firstBeatInside = cold.beats() >= 1 && firstMtime >= wallBefore - 10;
  const p0 = performance.now();
  cold.stop();
  const coldStopMs = performance.now() - p0;

  const cycle = (removeOnStop) => {
    const starts = [];
    const stops = [];
    for (let i = 0; i < cycles; i++) {
      const file = path.join(dir, `warm-${i % 2}`);
      const a = performance.now();
      const h = c.start({ file, interval: 3600, removeOnStop });
      const b = performance.now();
      h.stop();
      const e = performance.now();
      starts.push(b - a);
      stops.push(e - b);
    }
    return { starts, stops };
  };
  const load = contention([]);
  const kept = cycle(false);
  const removed = cycle(true);
  const loadDuring = contention([], load);
  // What finding the prebuild costs on its own (the lookup node-gyp-build
  // does inside the first start(); modules are loaded by now).
  let lookupMs = null;
  if (name !== 'plain') {
    const lookup = require(require.resolve('node-gyp-build', { paths: [PKG] }));
    const l0 = performance.now();
    lookup.resolve(PKG);
    lookupMs = performance.now() - l0;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    contender: name,
    requireMs,
    coldStartMs,
    coldStopMs,
    firstBeatInside,
    starts: kept.starts,
    stops: kept.stops,
    stopsRemove: removed.stops,
    otherCores: loadDuring.otherCores,
    lookupMs,
    phases,
  };
});
