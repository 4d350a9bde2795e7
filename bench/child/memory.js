'use strict';
// RSS added by start() in a fresh process: the package is required first,
// the heap settled, then one pulse started and left to beat for a while.
// Reports the kernel's split (anonymous = private memory, file-backed =
// pages of mapped files such as the node binary and the addon) and which
// mappings grew.
const path = require('node:path');
const { run, sleep, settle, rssParts, rssByMapping } = require('../lib/child');
const { PKG, contender } = require('../lib/contenders');

run(async ({ contender: name, dir, interval = 0.05, holdMs = 500 }) => {
  require(PKG);
  const c = contender(name);
  rssByMapping(); // reading smaps grows the JS heap once; do it before the baseline
  await settle();
  const mapsBefore = rssByMapping();
  await settle();
  const before = rssParts();
  const h = c.start({ file: path.join(dir, 'memory'), interval });
  await sleep(holdMs);
  await settle();
  const after = rssParts();
  const mapsAfter = rssByMapping();
  h.stop();
  const grew = {};
  for (const key of new Set([...Object.keys(mapsBefore), ...Object.keys(mapsAfter)])) {
    const d = (mapsAfter[key] || 0) - (mapsBefore[key] || 0);
    if (d !== 0) grew[key] = d * 1024;
  }
  return {
    contender: name,
    added: after.total - before.total,
    anon: after.anon - before.anon,
    file: after.file - before.file,
    byMapping: grew,
  };
});
