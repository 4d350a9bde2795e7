'use strict';
// Child of measure 9. `record`: a pulse (interval 0.1 s, maxStall 0.3 s)
// whose loop stalls `rounds` times for about 1 s inside one pbkdf2Sync
// call, 600 ms apart; the parent times each stall's first record with native
// frames. `handler`: samples this thread `rounds` x 100 times while it runs
// pbkdf2Sync and prints the time each capture spent on it (ns) as JSON.
const [pkg, mode, file, rounds] = process.argv.slice(2);
const crypto = require('node:crypto');
const path = require('node:path');
const derive = (n) => crypto.pbkdf2Sync('secret', 'salt', n, 32, 'sha512');
// Iterations for about 1 s on this machine.
const t0 = process.hrtime.bigint();
derive(100000);
const per = Number(process.hrtime.bigint() - t0) / 1e6 / 100000;
const iterations = Math.max(1000, Math.round(1000 / per));

if (mode === 'handler') {
  const binding = require(path.join(pkg, 'dist', 'native', 'loader.js')).loadNative();
  const handlerNs = [];
  for (let i = 0; i < Number(rounds); i++) {
    const stress = binding._nativeStackStress(100, 1000);
    while (!stress.done()) derive(20000);
    handlerNs.push(...stress.join().handlerNs);
  }
  process.stdout.write(JSON.stringify({ handlerNs }));
} else {
  const p = require(pkg).start({ file, interval: 0.1, maxStall: 0.3, strategy: 'native', logStalls: false });
  let left = Number(rounds);
  const next = () => {
    if (left-- === 0) {
      p.stop();
      return;
    }
    derive(iterations);
    setTimeout(next, 600);
  };
  setTimeout(next, 300);
}
