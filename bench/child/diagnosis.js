'use strict';
// Child of measure 8: a pulse (interval 0.1 s, maxStall 0.3 s) whose loop
// stalls `rounds` times for 700 ms, three calls deep, 600 ms apart. The
// parent watches the file and times each stall's first record.
const [pkg, file, strategy, rounds] = process.argv.slice(2);
const p = require(pkg).start({ file, interval: 0.1, maxStall: 0.3, strategy, logStalls: false });
function spin(ms) { const end = Date.now() + ms; while (Date.now() < end); }
function job() { spin(700); }
function worker() { job(); }
let left = Number(rounds);
function next() {
  if (left-- === 0) {
    p.stop();
    return;
  }
  worker();
  setTimeout(next, 600);
}
setTimeout(next, 300);
