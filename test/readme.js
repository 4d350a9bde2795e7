'use strict';
// The fenced blocks of the documentation (README.md and docs/*.md) and the
// test markers that precede them:
//   <!-- test: run -->            sh block run with `sh -e`, must exit 0
//   <!-- test: run, exits 1 -->   the same, must exit 1
//   <!-- test: dockerfile -->     ENV, WORKDIR, CMD and HEALTHCHECK are run
//   <!-- test: kubernetes -->     the container command, env and probe commands are run
//   <!-- test: kubernetes-http --> its env starts a preloaded worker, its httpGet probe is asked
//                                 (endpoint.test.js)
//   <!-- test: usage -->          must equal the CLI's usage text
//   <!-- test: demo -->           `npm run demo`, run by demo.test.js
//   <!-- test: example -->        first command starts an example, the rest (the
//                                 probe) must then pass; readme-examples.test.js
//   <!-- test: systemd -->        a unit file, run under a real systemd
//   <!-- test: pm2 -->            an ecosystem file, run under PM2
//   <!-- test: docker run -->     a `docker run` line, run on a real engine
//   <!-- test: compose -->        a Compose service; its restart, init and
//                                 environment become `docker run` flags
//                                 (test/supervisors/*.test.js)
const fs = require('node:fs');
const path = require('node:path');
const { PKG } = require('./helpers');

const README = path.join(PKG, 'README.md');
const DOCS = path.join(PKG, 'docs');

function readmeText() {
  return fs.readFileSync(README, 'utf8');
}

/** The pages whose blocks the tests run: README.md, then docs/*.md by name (paths relative to the package). */
function docFiles() {
  const pages = fs.existsSync(DOCS) ? fs.readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort() : [];
  return ['README.md', ...pages.map((f) => `docs/${f}`)];
}

/** Every page's text, one after the other. */
function docsText() {
  return docFiles().map((f) => fs.readFileSync(path.join(PKG, f), 'utf8')).join('\n');
}

/**
 * Every fenced block: {lang, body, marker (text after "test:"), line, file,
 * where ("docs/operations.md line 12")}. Without a text, of every page of
 * docFiles(); with one, of that text only.
 */
function blocks(text) {
  if (text === undefined) {
    return docFiles().flatMap((file) =>
      blocksOf(fs.readFileSync(path.join(PKG, file), 'utf8')).map((b) => ({ ...b, file, where: `${file} line ${b.line}` })),
    );
  }
  return blocksOf(text).map((b) => ({ ...b, where: `line ${b.line}` }));
}

function blocksOf(text) {
  const found = [];
  const fence = /^```(\w*)[^\n]*\n([\s\S]*?)^```[ \t]*$/gm;
  let m;
  while ((m = fence.exec(text)) !== null) {
    const before = text.slice(0, m.index).trimEnd().split('\n').pop();
    const marker = /^<!-- test: (.+?) -->$/.exec(before.trim());
    found.push({
      lang: m[1],
      body: m[2],
      marker: marker ? marker[1] : undefined,
      line: text.slice(0, m.index).split('\n').length,
    });
  }
  return found;
}

/** A Dockerfile's instructions, continuation lines joined: [{instruction, args}]. */
function dockerInstructions(body) {
  return body
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const space = line.indexOf(' ');
      return { instruction: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
    });
}

/** `ENV A=1 B="two words"` as an object. */
function dockerEnv(args) {
  const env = {};
  for (const m of args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    env[m[1]] = m[2].startsWith('"') ? JSON.parse(m[2]) : m[2];
  }
  return env;
}

/** A CMD's command: exec form (JSON array) as is, shell form through /bin/sh -c, as Docker runs them. */
function dockerCommand(args) {
  if (args.startsWith('[')) {
    try {
      const argv = JSON.parse(args);
      if (Array.isArray(argv)) return argv;
    } catch {
      // `[ ... ]` in shell form: the test command
    }
  }
  return ['/bin/sh', '-c', args];
}

/** HEALTHCHECK [--option=value ...] CMD ...: {options, argv}. */
function dockerHealthcheck(args) {
  const m = /^((?:--[\w-]+=\S+\s+)*)CMD\s+(.*)$/.exec(args);
  if (!m) throw new Error(`cannot read HEALTHCHECK ${args}`);
  const options = {};
  for (const o of m[1].matchAll(/--([\w-]+)=(\S+)/g)) options[o[1]] = o[2];
  return { options, argv: dockerCommand(m[2]) };
}

/**
 * What a Kubernetes container spec runs: `command: [...]` flow sequences (the
 * probes' sit under `exec:`), `env` name/value pairs and `workingDir`.
 */
function kubernetesParts(body) {
  const lines = body.split('\n');
  const probes = [];
  const commands = [];
  lines.forEach((line, i) => {
    const m = /^\s*command: (\[.*\])\s*$/.exec(line);
    if (!m) return;
    const argv = JSON.parse(m[1]);
    const previous = lines.slice(0, i).filter((l) => l.trim()).pop().trim();
    if (previous !== 'exec:') return commands.push(argv);
    const owner = lines.slice(0, i).reverse().find((l) => /^\s*\w+Probe:\s*$/.test(l));
    probes.push({ probe: owner ? owner.trim().slice(0, -1) : 'probe', argv });
  });
  const env = {};
  for (const m of body.matchAll(/- name: (\S+)\s*\n\s*value: (.+)/g)) {
    const value = m[2].trim();
    env[m[1]] = value.startsWith('"') ? JSON.parse(value) : value;
  }
  const workingDir = /^\s*workingDir: (\S+)\s*$/m.exec(body);
  return { commands, probes, env, workingDir: workingDir ? workingDir[1] : undefined };
}

module.exports = { README, docFiles, docsText, readmeText, blocks, dockerInstructions, dockerEnv, dockerCommand, dockerHealthcheck, kubernetesParts };
