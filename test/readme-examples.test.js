'use strict';
// The example command blocks of README.md and docs/ (marked `test: example`,
// in docs/integrations.md and docs/operations.md), run as
// written in a sandbox: the first command starts the example, the rest is the
// probe and must pass while it runs; SIGTERM then ends the example. /tmp and
// /app map into the sandbox, the Redis URL to the test's Redis, and PORT to a
// free port.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { PKG, sleep } = require('./helpers');
const { sandbox, cleanEnv, run, startChild } = require('./sandbox');
const { REDIS_SKIP, startRedis, freePort } = require('./redis');
const readme = require('./readme');

const blocks = readme.blocks().filter((b) => b.marker === 'example');

/** `A=1 B='two' cmd arg` as { env, argv }; the documented commands need no more of sh than that. */
function parseCommand(line) {
  const words = [...line.matchAll(/(?:[^\s'"]+|'[^']*'|"[^"]*")+/g)].map((m) => m[0].replace(/'([^']*)'|"([^"]*)"/g, '$1$2'));
  const env = {};
  while (words.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
    const word = words.shift();
    env[word.slice(0, word.indexOf('='))] = word.slice(word.indexOf('=') + 1);
  }
  return { env, argv: words };
}

test('the documentation shows a probed command block for each real-worker example', () => {
  const shown = blocks.map((b) => b.body).join('\n');
  // demo.js and demo-worker.js are `npm run demo`, which demo.test.js runs.
  for (const example of fs.readdirSync(path.join(PKG, 'examples')).filter((f) => f.endsWith('.js') && !f.startsWith('demo'))) {
    assert.ok(shown.includes(`node examples/${example}`), `no example block in README.md or docs/ runs examples/${example}`);
  }
});

for (const block of blocks) {
  const needsRedis = block.body.includes('redis://');
  test(`${block.where}: ${block.body.split('\n')[0].slice(0, 70)}`, { skip: needsRedis && REDIS_SKIP }, async (t) => {
    const box = sandbox(t);
    fs.symlinkSync(path.join(PKG, 'examples'), path.join(box.app, 'examples'), 'dir');
    let text = box.map(block.body.replace(/\\\n\s*/g, ''));
    if (needsRedis) {
      const redis = await startRedis();
      t.after(() => redis.stop());
      text = text.replaceAll('redis://127.0.0.1:6379', redis.url);
    }
    const port = await freePort();
    text = text.replace(/\bPORT=\d+/g, `PORT=${port}`);
    const [first, ...rest] = text.split('\n').filter((line) => line.trim() !== '');
    const { env, argv } = parseCommand(first);
    assert.equal(argv[0], 'node', `${block.where}: the first command starts node`);
    const example = startChild([process.execPath, ...argv.slice(1)], { cwd: box.app, env: cleanEnv(env) });
    t.after(() => example.kill('SIGKILL'));

    // The probe is retried as an orchestrator would, while the example starts
    // (a worker connecting to Redis on a busy machine can take a while).
    const probe = rest.join('\n');
    const deadline = Date.now() + 60000;
    let result;
    for (;;) {
      result = await run(['sh', '-e', '-c', probe], { cwd: box.app, env: cleanEnv() });
      if (result.status === 0 || Date.now() > deadline) break;
      await sleep(250);
    }
    assert.equal(result.status, 0, `${block.where}: the probe failed\n${result.stdout}${result.stderr}\nexample: ${example.output}${example.errors}`);
    assert.match(result.stdout, /^fresh: /m);

    example.kill('SIGTERM');
    const exit = await Promise.race([example.exited, sleep(30000).then(() => 'still running')]);
    assert.notEqual(exit, 'still running', 'SIGTERM ended the example');
    assert.ok(exit.status === 0 || exit.signal === 'SIGTERM', `exit ${JSON.stringify(exit)}\n${example.errors}`);
  });
}
