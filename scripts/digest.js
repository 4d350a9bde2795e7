'use strict';
// Digest of the native sources a binary is built from. binding.gyp bakes it
// into the addon; the test suite compares it with the sources in the tree, so
// a stale committed prebuild fails the tests.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function sourceDigest(root = path.join(__dirname, '..')) {
  // The core includes the stack piece's C interface too.
  const files = ['binding.gyp', 'native/stack/stack_api.h', ...fs.readdirSync(path.join(root, 'native'))
    .filter((name) => /\.(cc|h)$/.test(name))
    .sort()
    .map((name) => `native/${name}`)];
  return digestOf(root, files);
}

/** sha256 of the files' names and texts, the first 32 hex digits. */
function digestOf(root, files) {
  const hash = crypto.createHash('sha256');
  for (const file of files) {
    // Line endings are normalised so a checkout with CRLF digests the same.
    const text = fs.readFileSync(path.join(root, file), 'utf8').replace(/\r\n/g, '\n');
    hash.update(`${file}\0${text}\0`);
  }
  return hash.digest('hex').slice(0, 32);
}

module.exports = { sourceDigest, digestOf };
if (require.main === module) process.stdout.write(sourceDigest());
