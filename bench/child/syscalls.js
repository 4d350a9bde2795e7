'use strict';
// Runs under `strace -f -c`: one pulse beating for at least `minMs` and
// `minBeats` beats. A twin run with interval 3600 s (one beat) is the
// baseline the parent subtracts, leaving the syscalls of the beats alone.
const path = require('node:path');
const { run, sleep } = require('../lib/child');
const { contender } = require('../lib/contenders');

run(async ({ contender: name, dir, interval, maxStall, minMs, minBeats }) => {
  const c = contender(name);
  const h = c.start({ file: path.join(dir, `syscalls-${name}-${interval}`), interval, maxStall });
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || h.beats() < minBeats) await sleep(100);
  const beats = h.beats();
  h.stop();
  return { contender: name, interval, beats, elapsedMs: performance.now() - t0 };
});
