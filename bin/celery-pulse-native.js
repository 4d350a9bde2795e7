#!/usr/bin/env node
'use strict';
// Probes run this every few seconds: it loads the CLI alone, never the addon.
process.exitCode = require('../dist/cli.js').main(process.argv.slice(2));
