#!/usr/bin/env node
'use strict';
// Probes run this every few seconds: it loads the CLI alone, never the addon.
try {
  process.exitCode = require('../dist/cli/cli.js').main(process.argv.slice(2));
} catch (error) {
  // Deno refuses what its permissions do not allow with a NotCapable error
  // ("Requires env access to ..., run again with the --allow-env flag"): a
  // usage error of the command line, named, not a crash.
  if (!error || error.name !== 'NotCapable') throw error;
  const flag = /--allow-[a-z]+/.exec(String(error.message));
  process.stderr.write(
    `celery-pulse-native: Deno denied a permission the CLI needs${flag ? `: ${flag[0]}` : ''} (${error.message})\n` +
      'celery-pulse-native: under Deno the command needs deno run --allow-read --allow-env --allow-sys --allow-run\n',
  );
  process.exitCode = 2;
}
