'use strict';
// The compiler flags of binding.gyp's target, for the musl builds that
// scripts/prebuild.sh compiles with zig instead of node-gyp: the same
// defines (PULSE_SOURCE_DIGEST included), include dirs and C++ flags, plus
// the ones node-gyp's common.gypi and addon.gypi add on Linux. One per line.
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const target = JSON.parse(fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8')).targets[0];
// gyp's <!(command): the command's output, run from the project root.
const expand = (value) =>
  value.replace(/<!\((.*)\)/, (_, command) => execSync(command, { cwd: root, encoding: 'utf8' }).trim());

const flags = [
  '-O3', '-fPIC', '-pthread', '-fno-rtti', '-fno-exceptions', '-Wno-unused-parameter',
  ...target.cflags_cc,
  '-D_LARGEFILE_SOURCE', '-D_FILE_OFFSET_BITS=64', '-DBUILDING_NODE_EXTENSION',
  `-DNODE_GYP_MODULE_NAME=${target.target_name}`,
  ...target.defines.map((define) => `-D${expand(define)}`),
  ...target.include_dirs.map((dir) => `-I${path.relative(root, path.resolve(root, expand(dir))) || "."}`),
  ...target.sources,
];
process.stdout.write(`${flags.join('\n')}\n`);
