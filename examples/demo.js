'use strict';
// `npm run demo`: a worker with a pulse, probed live the way Docker or
// Kubernetes would probe it, through four moments: idle, busy for less than
// maxStall, stuck for longer, recovered. Ends by itself in about 12 s, with
// exit 0 when every probe said what it should.
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const CLI = path.join(ROOT, 'bin', 'celery-pulse-native.js');
for (const built of ['dist/register.js', 'dist/cli/cli.js']) {
  if (!fs.existsSync(path.join(ROOT, built))) {
    console.error(`demo: ${built} is missing; run \`npm run compile\` first`);
    process.exit(1);
  }
}

const INTERVAL = 0.5; // s between beats
const MAX_STALL = 2; // s the loop may stay silent before beats are withheld
const MAX_AGE = 2 * INTERVAL; // the probe's threshold, the CLI's default rule
const PROBE_EVERY_MS = 500;

// [label, headline, what happens to the file]
const PHASES = {
  idle: ['idle', 'idle: the worker waits for jobs, its event loop answers', ''],
  busy: [
    'busy',
    `busy: a 1 s synchronous job, shorter than maxStall (${MAX_STALL} s)`,
    'the heartbeat thread runs outside the event loop, so the beats go on',
  ],
  between: ['idle again', 'idle again', ''],
  stuck: [
    'stuck',
    `stuck: the event loop is blocked for 5 s, longer than maxStall (${MAX_STALL} s)`,
    `beats go on for maxStall, then they are withheld and the file ages past ${MAX_AGE} s`,
  ],
  recovered: ['recovered', 'recovered: the loop answers again', 'the next beat makes the file fresh'],
};

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-demo-'));
const file = path.join(dir, 'healthcheck');
const env = {
  ...process.env,
  CELERY_PULSE_HEALTHCHECK_FILE: file,
  CELERY_PULSE_HEARTBEAT_INTERVAL: String(INTERVAL),
  CELERY_PULSE_MAX_STALL: String(MAX_STALL),
};
delete env.CELERY_PULSE_REGISTERED; // in case the demo itself runs under a pulse

const out = (line = '') => process.stdout.write(`${line}\n`);
out(bold('celery-pulse-native demo'));
out();
out('A worker starts with a pulse and no heartbeat code of its own:');
out(cyan(`  CELERY_PULSE_HEALTHCHECK_FILE=${file} \\`));
out(cyan(`  CELERY_PULSE_HEARTBEAT_INTERVAL=${INTERVAL} CELERY_PULSE_MAX_STALL=${MAX_STALL} \\`));
out(cyan('  node --require celery-pulse-native/register examples/demo-worker.js'));
out(`Every ${PROBE_EVERY_MS / 1000} s it runs the probe an orchestrator would (--json fills the table):`);
out(cyan(`  celery-pulse-native check --file ${file} --max-age ${MAX_AGE} --json`));
out(dim(`The heartbeat thread touches the file every ${INTERVAL} s while the event loop has answered`));
out(dim(`within the last ${MAX_STALL} s; the probe passes while the file is at most ${MAX_AGE} s old.`));

const started = Date.now();
const worker = spawn(process.execPath, ['--require', 'celery-pulse-native/register', 'examples/demo-worker.js'], {
  cwd: ROOT,
  env,
  stdio: ['pipe', 'pipe', 'inherit'],
});
let phase = 'starting';
const results = new Map(Object.keys(PHASES).map((name) => [name, []]));
let failedAt;
let diagnosed = false;
let stuckAt;
let recoveredAt;
let probing = false;
let sampler;
const waiters = [];

let pending = '';
worker.stdout.on('data', (chunk) => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    const waiter = waiters.findIndex((w) => w.line === line);
    if (waiter >= 0) waiters.splice(waiter, 1)[0].resolve();
  }
});
const lineFrom = (line) => new Promise((resolve) => waiters.push({ line, resolve }));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const order = (text) => worker.stdin.write(`${text}\n`);

// The probe's reason, cut to fit a terminal row: times of day, no pid.
const shorten = (reason) =>
  reason
    .replace(/\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d\.\d)\d\dZ/g, '$1')
    .replace(/ \(pid \d+[^)]*\)$/, '')
    .replace(/ as of [\d.]+ s ago/, '')
    .replace('event loop silent for', 'loop silent')
    .replace('; beats withheld', '')
    .replace(', the file goes stale in', ', stale in')
    .replace(/^running: event loop answering again since .* after a stall that began .*/, 'running, answering again');

function probe() {
  if (probing) return; // a slow probe on a loaded machine: skip a beat rather than pile up
  probing = true;
  execFile(process.execPath, [CLI, 'check', '--file', file, '--max-age', String(MAX_AGE), '--json'], { env }, (error, stdout) => {
    probing = false;
    const exit = error ? error.code : 0;
    let verdict;
    try {
      verdict = JSON.parse(stdout);
    } catch {
      out(red(`  probe printed no verdict (exit ${exit}): ${stdout}`));
      return;
    }
    const seconds = `${((Date.now() - started) / 1000).toFixed(1)} s`.padStart(6);
    const age = verdict.ageMs === null ? '   -  ' : `${(verdict.ageMs / 1000).toFixed(1)} s`.padStart(6);
    const label = exit === 0 ? green('exit 0  ok  ') : red('exit 1  FAIL');
    out(`  ${seconds}  ${age}  ${label}  ${dim(shorten(verdict.reason))}`);
    // Counted in the phase it finished in, the one printed above it.
    if (results.has(phase)) results.get(phase).push({ exit, state: verdict.state });
    if (exit !== 0 && phase === 'stuck' && failedAt === undefined) {
      failedAt = Date.now();
      explain();
    }
  });
}

// While the worker is still stuck: what its record says it is doing, as
// `celery-pulse-native status` prints it.
function explain() {
  execFile(process.execPath, [CLI, 'status', '--file', file, '--max-age', String(MAX_AGE)], { env }, (error, stdout) => {
    const rows = stdout.split('\n').filter((line) => /^(stack|thread|active) /.test(line) || /^ {6,}at /.test(line));
    if (rows.length === 0) return;
    out(cyan('         the file says where it is stuck (celery-pulse-native status):'));
    for (const row of rows) out(cyan(`           ${row}`));
    diagnosed = rows.some((row) => /^active .*job report #2/.test(row)) && rows.some((row) => /^thread +running/.test(row));
  });
}

function enter(name) {
  phase = name;
  const [, headline, detail] = PHASES[name];
  out(bold(`── ${headline}`));
  if (detail) out(dim(`   (${detail})`));
}

function finish(code) {
  clearInterval(sampler);
  worker.kill();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exitCode = code;
}

async function run() {
  await lineFrom('ready');
  out();
  out(dim('    time  file age  probe         what the file says'));
  sampler = setInterval(probe, PROBE_EVERY_MS);
  enter('idle');
  probe();
  await sleep(2000);

  enter('busy');
  order('block 1000');
  await lineFrom('done');
  enter('between');
  await sleep(1000);

  enter('stuck');
  stuckAt = Date.now();
  order('block 5000');
  await lineFrom('done');
  recoveredAt = Date.now();
  enter('recovered');
  await sleep(2500);
  clearInterval(sampler);
  while (probing) await sleep(20);
  order('exit');
  worker.stdin.end();
  await new Promise((resolve) => worker.once('close', resolve));

  out();
  out(bold('What the orchestrator saw'));
  const problems = [];
  for (const [name, samples] of results) {
    const passed = samples.filter((s) => s.exit === 0).length;
    const failed = samples.length - passed;
    const tally = [passed && `${passed} ok`, failed && `${failed} failed`].filter(Boolean).join(', ') || 'no probe';
    let note;
    if (name === 'stuck') {
      if (samples.some((s) => s.exit === 1 && s.state === 'stalled')) {
        const after = ((failedAt - stuckAt) / 1000).toFixed(1);
        note = green(`unhealthy ${after} s into the stall (about maxStall + max-age): it would be restarted`);
        if (!diagnosed) problems.push('the stall record did not name the running job and a busy thread');
      } else {
        note = red('never unhealthy: a stuck worker would be left running');
        problems.push('no probe failed while the worker was stuck');
      }
    } else if (name === 'recovered') {
      if (samples.length && samples[samples.length - 1].exit === 0) {
        note = green('healthy again from the next beat');
      } else {
        note = red('still unhealthy');
        problems.push('the probe did not pass again after the stall');
      }
    } else if (failed === 0 && samples.length) {
      note = green(name === 'busy' ? 'healthy: busy for less than maxStall is not stuck' : 'healthy');
    } else {
      note = red('UNHEALTHY');
      problems.push(`a probe failed while the worker was ${PHASES[name][0]}`);
    }
    out(`  ${PHASES[name][0].padEnd(11)} ${tally.padEnd(17)} ${note}`);
  }
  const took = ((Date.now() - started) / 1000).toFixed(1);
  if (problems.length) {
    out(red(`Not as it should be (an overloaded machine can do this): ${problems.join('; ')}.`));
    return finish(1);
  }
  out(dim(`All as expected, in ${took} s.`));
  out('Next: README.md has the Docker HEALTHCHECK and Kubernetes livenessProbe recipes.');
  return finish(0);
}

worker.on('exit', (code, signal) => {
  if (phase !== 'recovered' && (code !== 0 || signal)) {
    out(red(`the worker ended early (exit ${code}, signal ${signal})`));
    finish(1);
    process.exit();
  }
});
process.on('SIGINT', () => {
  finish(130);
  process.exit();
});
run().catch((error) => {
  out(red(String(error?.stack ?? error)));
  finish(1);
});
