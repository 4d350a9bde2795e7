'use strict';
// Digest of the sources the stack capture addon (native/stack/) is built
// from: every file in native/stack/ plus native/glibc_floor.h, which it
// includes. native/stack/binding.gyp bakes it into each binary as
// `sourceDigest`; test/stack.test.js compares every committed
// prebuilds/*/stack/stack-abi*.glibc.node with the tree, so a stale one fails.
const fs = require('node:fs');
const path = require('node:path');
const { digestOf } = require('./digest.js');

function stackSourceDigest(root = path.join(__dirname, '..')) {
  return digestOf(root, [
    'native/glibc_floor.h',
    ...fs
      .readdirSync(path.join(root, 'native/stack'))
      .filter((name) => /\.(cc|h|gyp)$/.test(name))
      .sort()
      .map((name) => `native/stack/${name}`),
  ]);
}

module.exports = { stackSourceDigest };
if (require.main === module) process.stdout.write(stackSourceDigest());
