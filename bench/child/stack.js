'use strict';
// Child of bench/stack.js: a main thread spinning `depth` calls deep while a
// native thread captures its stack `repeat` times, `gapMs` apart. Prints the
// capture records as JSON.
const path = require('node:path');
const { loadStack } = require(path.join(__dirname, '..', '..', 'dist', 'native', 'stack.js'));

const [repeat, gapMs, depth] = process.argv.slice(2).map(Number);
const stack = loadStack();
if ('unavailable' in stack) {
  console.error(stack.unavailable);
  process.exit(2);
}
const [api, ctx] = stack.attach();
let job;
function descend(n) {
  if (n > 1) return descend(n - 1);
  job = stack.binding._captureLater(api, ctx, 50, 2000, repeat, gapMs, false);
  // Stuck until the capture thread is done.
  const end = Date.now() + 60000;
  let turns = 0;
  while (!stack.binding._done(job) && Date.now() < end) turns++;
  return turns;
}
descend(depth);
const records = stack.binding._join(job);
stack.binding._release(api, ctx);
process.stdout.write(JSON.stringify({ node: process.version, file: stack.file, records }));
