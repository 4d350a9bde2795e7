// The beats' wall-clock times, finer than Date.now(), for the worker strategy.
//
// Date.now() is whole milliseconds: used as the mtime, it would put up to 1 ms
// of rounding into every gap between beats (the addon's times are in
// nanoseconds). Here the wall clock is the monotonic clock plus an offset.
// (The monotonic clock is process.hrtime: performance.now() was seen to step
// by 0.15 to 0.4 ms against Date.now() in the first beats of a thread.)
// Each sample of that offset reads Date.now() first and the monotonic clock
// after it, so it is never above the true offset, however the thread is
// interrupted in between; the largest seen is kept. The first is read as
// Date.now() turns to its next millisecond (a wait of at most a few ms, once
// per thread and again after the wall clock steps back), so it starts within
// microseconds of the truth. The result is never earlier than Date.now().
// Each thread keeps its own offset.

let wallOffsetMs = Number.NaN;

const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// The tick of Date.now() is taken when the reads around it are this close.
const TIGHT_MS = 0.05;
const TRIES = 3;

function calibrate(): number {
  let best = Number.NEGATIVE_INFINITY;
  let ms = Date.now();
  let mono = monoMs();
  for (let tries = 0; tries < TRIES; tries++) {
    const from = ms;
    let before: number;
    do {
      before = mono;
      ms = Date.now();
      mono = monoMs();
    } while (ms === from);
    best = Math.max(best, ms - mono);
    if (mono - before < TIGHT_MS) break;
  }
  return best;
}

export function exactWallMs(): number {
  const ms = Date.now();
  const mono = monoMs();
  const sample = ms - mono;
  if (!(sample >= wallOffsetMs - 1)) {
    wallOffsetMs = calibrate();
  } else if (sample > wallOffsetMs) {
    wallOffsetMs = sample;
  }
  // In whole microseconds, as file times are set (src/worker/pulse-file.ts).
  return Math.round(Math.max(ms, mono + wallOffsetMs) * 1000) / 1000;
}
