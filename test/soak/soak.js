'use strict';
// Soak: a long run under a mix of everything a pulse lives through, measuring
// the slopes of RSS, open descriptors and threads after a warm-up, and failing
// when one is above its bound.
//
//   npm run soak                        # 60 minutes
//   npm run soak -- --minutes 5         # what CI runs
//   npm run soak -- --minutes 5 --warmup 30 --sample 5
//
// The mix, all at once, in this process:
// - a native pulse beating every 10 ms whose loop stalls for 0.4 s every 3 s
//   (each stall diagnosed, logged to a sink, recorded and recovered);
// - start/stop churn: a native and a worker-strategy pulse started and
//   stopped every 50 ms;
// - every 2 s a worker thread that starts a pulse beating every 10 ms and is
//   terminated while it runs;
// - where the pulse serves an endpoint (the `listen` option), /metrics and
//   /livez scraped every 100 ms.
// Samples (after a full GC) are taken every --sample seconds once the warm-up
// is over; the slope is a least-squares fit, per hour. Bounds per hour: RSS
// --rss-mb-per-hour (16), descriptors and threads --count-per-hour (10) each.
// A leak of one descriptor or one thread per churn cycle would be about
// 72,000 an hour; one of 1 KB per cycle, about 70 MB an hour.
// Prints a summary, a JSON line, then "soak: N passed, M failed"; exits 1 on a
// failed check.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const { Worker } = require('node:worker_threads');

if (typeof global.gc !== 'function') {
  // Samples are taken after a full GC: re-run with --expose-gc, and V8's
  // young generation pinned small (it grows by up to 32 MB in steps under a
  // high allocation rate, which is not the pulses' memory).
  const { spawnSync } = require('node:child_process');
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

function parseArgs(argv) {
  const options = { minutes: 60, warmup: null, sample: 5, 'rss-mb-per-hour': 16, 'count-per-hour': 10 };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in options) || i + 1 >= argv.length) {
      console.error(`soak: unknown or incomplete argument ${argv[i]}; known: ${Object.keys(options).map((k) => `--${k} N`).join(' ')}`);
      process.exit(2);
    }
    const value = Number(argv[++i]);
    if (!Number.isFinite(value) || value <= 0) {
      console.error(`soak: --${name} takes a positive number, got ${argv[i]}`);
      process.exit(2);
    }
    options[name] = value;
  }
  // A tenth of the run, between 20 s and 5 min, unless given.
  if (options.warmup === null) options.warmup = Math.min(300, Math.max(20, options.minutes * 6));
  return options;
}

const options = parseArgs(process.argv.slice(2));
const pulse = require(path.join(__dirname, '..', '..'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pulse-soak-'));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x, digits = 1) => Number(x.toFixed(digits));
const failures = [];
let checks = 0;
const check = (ok, message) => {
  checks++;
  if (!ok) failures.push(message);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
};

/** RSS (MB), open descriptors and threads, after a full GC and a turn of the loop. */
async function sample() {
  global.gc();
  await sleep(20);
  global.gc();
  return {
    rss: process.memoryUsage.rss() / 2 ** 20,
    fds: fs.readdirSync('/proc/self/fd').length,
    threads: fs.readdirSync('/proc/self/task').length,
  };
}

/** Least-squares slope of ys over xs (seconds), per hour. */
function slopePerHour(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 3600;
}

/** Whether this build serves the endpoint (the `listen` option). */
function endpointSupported() {
  try {
    pulse.start({ file: path.join(dir, 'probe-listen'), interval: 60, listen: '127.0.0.1:0', strategy: 'native' }).stop();
    return true;
  } catch (error) {
    if (error.code === 'ERR_PULSE_INVALID_OPTION') return false;
    throw error;
  }
}

/**
 * GET http://127.0.0.1:port/path with a 2 s limit over a plain socket (the
 * endpoint closes every connection after its response); resolves with the
 * status code, or 0 on failure. Not Node's http client: its own allocations
 * would show in this process's RSS as if they were the endpoint's.
 */
function get(port, urlPath) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let head = '';
    const done = (status) => {
      socket.destroy();
      resolve(status);
    };
    socket.setTimeout(2000, () => done(0));
    socket.on('connect', () => socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    socket.on('data', (chunk) => {
      if (head.length < 64) head += chunk.toString('latin1', 0, Math.min(chunk.length, 64));
    });
    socket.on('end', () => done(Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0)));
    socket.on('error', () => done(0));
  });
}

const WORKER_SOURCE = `
  const { parentPort, workerData } = require('node:worker_threads');
  const p = require(workerData.pkg).start({ file: workerData.file, interval: 0.01, maxStall: 1, strategy: 'native' });
  parentPort.postMessage('started');
  setInterval(() => p.status(), 5);`;

/** A worker thread with a pulse, terminated once the pulse runs. */
async function workerWithPulse(n) {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { pkg: path.join(__dirname, '..', '..'), file: path.join(dir, `worker-${n % 4}`) },
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the worker thread did not start its pulse within 10 s')), 10000);
    worker.once('message', () => { clearTimeout(timer); resolve(); });
    worker.once('error', (error) => { clearTimeout(timer); reject(error); });
  });
  await sleep(100 + (n % 5) * 20);
  await worker.terminate();
}

async function main() {
  const serves = endpointSupported();
  console.log(`soak: ${options.minutes} min (warm-up ${options.warmup} s, a sample every ${options.sample} s), node ${process.version}, ` +
    `${os.availableParallelism()} cores, endpoint ${serves ? 'scraped' : 'not in this build: not scraped'}`);
  // The stall blocks go to stderr by default: a file here, so the log shows the summary.
  const main = pulse.start({
    file: path.join(dir, 'main'), interval: 0.01, maxStall: 0.2, strategy: 'native', logStalls: false,
    ...(serves ? { listen: '127.0.0.1:0' } : {}),
  });
  const port = serves ? Number(String(main.status().listen).split(':').pop()) : 0;

  const started = performance.now();
  const warmEnd = started + options.warmup * 1000;
  const end = warmEnd + options.minutes * 60 * 1000;
  const xs = [];
  const series = { rss: [], fds: [], threads: [] };
  let nextSample = warmEnd;
  let nextStall = started + 3000;
  let nextWorker = started + 2000;
  let cycles = 0;
  let workers = 0;
  let stalls = 0;
  let scrapes = 0;
  let badScrapes = 0;
  let churn = 0;
  while (performance.now() < end) {
    const now = performance.now();
    // Churn: both strategies, files reused so the directory stays small.
    pulse.start({ file: path.join(dir, `churn-n-${churn % 8}`), interval: churn % 2 ? 0.01 : 60, maxStall: 5, strategy: 'native' }).stop();
    pulse.start({ file: path.join(dir, `churn-w-${churn % 8}`), interval: churn % 2 ? 0.01 : 60, maxStall: 5, strategy: 'worker' }).stop();
    churn++;
    cycles += 2;
    if (now >= nextStall) {
      const until = performance.now() + 400;
      while (performance.now() < until);
      stalls++;
      nextStall += 3000;
    }
    if (now >= nextWorker) {
      await workerWithPulse(workers++);
      nextWorker += 2000;
    }
    if (serves && churn % 2 === 0) {
      const [metrics, livez] = await Promise.all([get(port, '/metrics'), get(port, '/livez')]);
      scrapes += 2;
      if (metrics !== 200) badScrapes++;
      if (livez !== 200 && livez !== 503) badScrapes++;
    }
    if (now >= nextSample) {
      const s = await sample();
      xs.push((performance.now() - warmEnd) / 1000);
      series.rss.push(s.rss);
      series.fds.push(s.fds);
      series.threads.push(s.threads);
      nextSample += options.sample * 1000;
    }
    await sleep(50);
  }
  const status = main.status();
  main.stop();

  const slopes = {
    rssMbPerHour: round(slopePerHour(xs, series.rss), 2),
    fdsPerHour: round(slopePerHour(xs, series.fds), 2),
    threadsPerHour: round(slopePerHour(xs, series.threads), 2),
  };
  const range = (ys) => `${round(Math.min(...ys))}..${round(Math.max(...ys))}`;
  console.log(`soak: ${cycles} start/stop cycles, ${workers} worker threads terminated, ${stalls} stalls, ${scrapes} scrapes`);
  console.log(`soak: main pulse: ${status.beats} beats, ${status.withheld} withheld, ${status.errors} errors`);
  console.log(`soak: ${xs.length} samples: RSS ${range(series.rss)} MB, descriptors ${range(series.fds)}, threads ${range(series.threads)}`);
  check(xs.length >= 3, `at least 3 samples after the warm-up (${xs.length})`);
  check(slopes.rssMbPerHour <= options['rss-mb-per-hour'], `RSS slope ${slopes.rssMbPerHour} MB/h <= ${options['rss-mb-per-hour']} MB/h`);
  check(slopes.fdsPerHour <= options['count-per-hour'], `descriptor slope ${slopes.fdsPerHour}/h <= ${options['count-per-hour']}/h`);
  check(slopes.threadsPerHour <= options['count-per-hour'], `thread slope ${slopes.threadsPerHour}/h <= ${options['count-per-hour']}/h`);
  check(status.withheld > 0 && status.lastStall !== null, `the stalls were seen (${status.withheld} beats withheld)`);
  check(status.errors === 0, `no file error in the main pulse (${status.errors})`);
  if (serves) check(badScrapes === 0, `every scrape answered (${badScrapes} of ${scrapes} failed)`);
  console.log(JSON.stringify({
    ok: failures.length === 0, failures, node: process.version, minutes: options.minutes, warmupSeconds: options.warmup,
    samples: xs.length, slopes, bounds: { rssMbPerHour: options['rss-mb-per-hour'], countPerHour: options['count-per-hour'] },
    cycles, workers, stalls, scrapes, badScrapes,
  }));
}

main()
  .catch((error) => {
    console.error(error);
    failures.push(String(error));
  })
  .finally(() => {
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`soak: ${checks - failures.length} passed, ${failures.length} failed`);
    process.exit(failures.length === 0 ? 0 : 1);
  });
