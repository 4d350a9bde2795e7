'use strict';
// The root file system of the test images' base, imported with `docker
// import` (no registry): the host's node and the libraries it links, BusyBox,
// tini. Shared by test/engine and test/supervisors.
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

/** The base image's root file system: the host's node and the libraries it links, BusyBox, tini. */
function baseRoot(dir) {
  const copy = (from, to = from) => {
    fs.mkdirSync(path.join(dir, path.dirname(to)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(from), path.join(dir, to));
    fs.chmodSync(path.join(dir, to), fs.statSync(fs.realpathSync(from)).mode);
  };
  const node = fs.realpathSync(process.execPath);
  copy(node, '/usr/bin/node');
  const ldd = spawnSync('ldd', [node], { encoding: 'utf8' });
  assert.equal(ldd.status, 0, ldd.stderr);
  for (const m of ldd.stdout.matchAll(/(\/\S+) \(0x/g)) copy(m[1]);
  copy('/bin/busybox', '/bin/busybox');
  const applets = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const applet of applets) if (!fs.existsSync(path.join(dir, 'bin', applet))) fs.symlinkSync('busybox', path.join(dir, 'bin', applet));
  fs.mkdirSync(path.join(dir, 'usr', 'bin'), { recursive: true });
  fs.symlinkSync('/bin/env', path.join(dir, 'usr', 'bin', 'env'));
  // Debian's tini package puts it here, as in node:*-slim with `apt-get install tini`.
  copy('/usr/bin/tini-static', '/usr/bin/tini');
  fs.mkdirSync(path.join(dir, 'tmp'), { mode: 0o1777 });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.writeFileSync(path.join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
}


module.exports = { baseRoot };
