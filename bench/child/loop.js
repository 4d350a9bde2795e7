'use strict';
// Event-loop cost of a heartbeat.
// mode "hops": time a loop-bound workload (a chain of setImmediate hops), in
//   wall time and in the main thread's CPU time (which other processes on a
//   shared machine disturb far less), timing the heartbeat's timer callbacks
//   that run in between.
// mode "idle": with the loop otherwise idle, count the heartbeat's timer
//   callbacks on the loop and their time, and the main thread's CPU time.
const path = require('node:path');
const { run, sleep, mainThreadCpuNs } = require('../lib/child');
const { PKG, contender } = require('../lib/contenders');

function hopChain(hops) {
  return new Promise((resolve) => {
    let n = 0;
    const hop = () => (++n < hops ? setImmediate(hop) : resolve());
    setImmediate(hop);
  });
}

/** Times a callback into `totals` ({calls, ns}). */
function timed(fn, totals) {
  return function (...args) {
    const t = process.hrtime.bigint();
    try {
      return fn.apply(this, args);
    } finally {
      totals.ns += Number(process.hrtime.bigint() - t);
      totals.calls++;
    }
  };
}

/**
 * Wraps setInterval so the callbacks of timers created later (the
 * heartbeat's) are timed. A control timer with an empty callback, timed the
 * same way at the same period, measures what the timing itself costs there.
 */
function timeIntervalCallbacks() {
  const heartbeat = { calls: 0, ns: 0 };
  const control = { calls: 0, ns: 0 };
  const original = globalThis.setInterval;
  globalThis.setInterval = function (fn, ...rest) {
    return original.call(this, typeof fn === 'function' ? timed(fn, heartbeat) : fn, ...rest);
  };
  const startControl = (ms) => {
    const t = original(timed(() => {}, control), ms);
    t.unref();
    return t;
  };
  const reset = () => {
    heartbeat.calls = heartbeat.ns = control.calls = control.ns = 0;
  };
  /** Mean ns per heartbeat callback, less the control's. */
  const nsEach = () =>
    heartbeat.calls ? Math.max(0, heartbeat.ns / heartbeat.calls - (control.calls ? control.ns / control.calls : 0)) : 0;
  return { heartbeat, control, startControl, reset, nsEach };
}

/**
 * The native answer() call alone, warm, in a tight loop. Reaches into the
 * package's loader (dist/native/loader.js), so it reports null if that changes.
 */
function warmAnswerNs(calls = 1e6) {
  try {
    const { loadNative } = require(path.join(PKG, 'dist', 'native', 'loader.js'));
    const handle = new (loadNative().PulseHandle)('/nonexistent/never-started', 3600, 3600, '');
    for (let i = 0; i < 1e5; i++) handle.answer();
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) handle.answer();
    return Number(process.hrtime.bigint() - t) / calls;
  } catch {
    return null;
  }
}

run(async ({ mode, contender: name, dir, interval, hops = 1e6, idleMs = 4000, warmMs = 200 }) => {
  require(PKG);
  if (mode === 'answer') return { mode, warmAnswerNs: warmAnswerNs() };
  const c = contender(name);
  const file = path.join(dir, `loop-${name}`);
  const timing = timeIntervalCallbacks();
  // The control timer runs in every arm, so A/B comparisons stay fair.
  const control = timing.startControl(Math.max(1, interval * 250));
  if (mode === 'hops') {
    const h = c.start({ file, interval });
    await sleep(warmMs);
    timing.reset();
    const cpu0 = mainThreadCpuNs();
    const t0 = performance.now();
    await hopChain(hops);
    const ms = performance.now() - t0;
    const cpuMs = (mainThreadCpuNs() - cpu0) / 1e6;
    h.stop();
    clearInterval(control);
    return {
      contender: name,
      mode,
      ms,
      cpuMs,
      callbacks: timing.heartbeat.calls,
      callbackNsEach: timing.nsEach(),
      controlNsEach: timing.control.calls ? timing.control.ns / timing.control.calls : null,
    };
  }
  const h = c.start({ file, interval });
  clearInterval(control); // an idle loop is measured without it
  await sleep(warmMs);
  timing.reset();
  const cpu0 = mainThreadCpuNs();
  const t0 = performance.now();
  await sleep(idleMs);
  const seconds = (performance.now() - t0) / 1000;
  const cpuNs = mainThreadCpuNs() - cpu0;
  h.stop();
  return {
    contender: name,
    mode,
    seconds,
    callbacksPerSec: timing.heartbeat.calls / seconds,
    mainCpuNsPerSec: cpuNs / seconds,
  };
});
