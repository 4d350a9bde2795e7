'use strict';
// Digest of the sources the stack capture addon (native/stack/) is built
// from: every file in native/stack/ plus native/glibc_floor.h, which it
// includes. native/stack/binding.gyp bakes it into each binary as
// `sourceDigest`; test/stack.test.js compares every committed
// prebuilds/*/stack/stack-abi*.glibc.node with the tree, so a stale one fails.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function stackSourceDigest(root = path.join(__dirname, '..')) {
  const files = [
    'native/glibc_floor.h',
    ...fs
      .readdirSync(path.join(root, 'native/stack'))
      .filter((name) => /\.(cc|h|gyp)$/.test(name))
      .sort()
      .map((name) => `native/stack/${name}`),
  ];
  const hash = crypto.createHash('sha256');
  for (const file of files) {
    // Line endings are normalised so a checkout with CRLF digests the same.
    const text = fs.readFileSync(path.join(root, file), 'utf8').replace(/\r\n/g, '\n');
    hash.update(`${file}\0${text}\0`);
  }
  return hash.digest('hex').slice(0, 32);
}

module.exports = { stackSourceDigest };
if (require.main === module) process.stdout.write(stackSourceDigest());
