'use strict';
// 6. Wall time of the `check` CLI, next to a bare `node -e 0` and the plain
// shell probe a user would otherwise put in a HEALTHCHECK.
const fs = require('node:fs');
const path = require('node:path');
const { timeCommand, tempDir } = require('../lib/proc');
const { PKG } = require('../lib/contenders');
const { median, percentile, verdict, fmtMs } = require('../lib/stats');

const RATIO = 1.5;

/** The command a probe runs: the package's bin entry for the CLI, when built. */
function cliEntry() {
  let bin = null;
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(PKG, 'package.json'), 'utf8'));
    const entry = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin && Object.values(pkg.bin)[0];
    if (entry) bin = path.join(PKG, entry);
  } catch {
    // no package.json bin: fall through
  }
  if (!fs.existsSync(path.join(PKG, 'dist', 'cli', 'cli.js'))) return null;
  return bin && fs.existsSync(bin) ? bin : path.join(PKG, 'dist', 'cli', 'cli.js');
}

async function cli(ctx) {
  const row = (cells, v, note) => ({
    id: '6',
    measure: '`check` CLI wall time (median) vs `node -e 0`',
    cells,
    target: `≤ ${RATIO} × node -e 0`,
    verdict: v,
    note,
  });
  const CLI = cliEntry();
  if (!CLI) {
    ctx.log('6. check CLI: pending (dist/cli/cli.js is not built on this branch)');
    return { rows: [row({ native: 'pending' }, 'pending', 'dist/cli/cli.js does not exist yet')], data: { pending: true } };
  }
  const rounds = ctx.quick ? 5 : 20;
  const dir = tempDir('cli');
  const file = path.join(dir, 'healthcheck');
  const pulse = require(PKG).start({ file, interval: 1, maxStall: Infinity });
  const arms = {
    bare: [process.execPath, ['-e', '0']],
    check: [process.execPath, [CLI, 'check', '--file', file, '--max-age', '10']],
    shell: ['sh', ['-c', `[ $(($(date +%s) - $(stat -c %Y "${file}"))) -lt 10 ]`]],
  };
  ctx.log(`6. check CLI (${path.relative(PKG, CLI)}): ${rounds} rounds of ${Object.keys(arms).join(', ')}`);
  const times = { bare: [], check: [], shell: [] };
  const failures = [];
  const keys = Object.keys(arms);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < keys.length; i++) {
      const key = keys[(i + r) % keys.length];
      const [cmd, args] = arms[key];
      const t = timeCommand(cmd, args);
      if (t.status !== 0) failures.push(`${key}: exit ${t.status} ${(t.stderr || t.stdout || '').trim().slice(0, 200)}`);
      times[key].push(t.ms);
    }
  }
  pulse.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  const m = Object.fromEntries(keys.map((k) => [k, median(times[k])]));
  const ratio = m.check / m.bare;
  ctx.log(`  node -e 0 ${fmtMs(m.bare)}, check ${fmtMs(m.check)} (${ratio.toFixed(2)}×), shell probe ${fmtMs(m.shell)}`);
  if (failures.length) ctx.log(`  failures: ${failures.slice(0, 3).join('; ')}`);
  const cells = {
    native: `${fmtMs(m.check)} (${ratio.toFixed(2)}×, ${m.check - m.bare >= 0 ? '+' : '−'}${fmtMs(Math.abs(m.check - m.bare))}; p90 ${fmtMs(percentile(times.check, 90))})`,
    plain: `shell stat probe ${fmtMs(m.shell)}`,
  };
  const v = failures.some((f) => f.startsWith('check')) ? 'MISS' : verdict(ratio, { op: '<=', limit: RATIO });
  return {
    rows: [row(cells, v, `node -e 0: ${fmtMs(m.bare)}; the command timed is \`node ${path.relative(PKG, CLI)} check --file F --max-age 10\` on a fresh file${failures.length ? `; failures: ${failures[0]}` : ''}`)],
    data: { rounds, command: path.relative(PKG, CLI), times, median: m, ratio, failures },
  };
}

module.exports = { cli };
