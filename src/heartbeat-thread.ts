// The heartbeat thread of the worker strategy: the JavaScript twin of
// Heartbeat::Run and Heartbeat::Tick in native/heartbeat.cc. It runs in its own
// worker_threads Worker, so its beats are on time while the owner's event loop
// is busy, and it never returns to its own event loop until it stops.
import * as os from 'node:os';
import { workerData } from 'node:worker_threads';
import { Phase, Slot } from './claims';
import { touch, writeRecord, type FileResult } from './pulse-file';
import { iso, record, seconds, type RecordState } from './record';
import * as S from './worker-state';

const config = workerData as S.HeartbeatConfig;
const { i64, i32 } = S.views(config.state);
const slot = new Slot(config.claims, config.slot, config.gen);
const { idle, busy, stopped } = S.RunState;

const now = () => process.hrtime.bigint();
const { ENOENT } = os.constants.errno;

// Wall ms since which the loop has been silent; this thread only.
let stalledSinceMs = 0;
// Whether the file's record currently says "stalled"; this thread only.
let recordSaysStalled = false;

function stopRequested(): boolean {
  return Atomics.load(i32, S.RUN) === stopped || !slot.held();
}

function makeRecord(state: RecordState, message: string, wallMs: number, lastBeatMs: number): string {
  const silentMs = Number((now() - Atomics.load(i64, S.ANSWER_NS)) / 1_000_000n);
  return record(state, message, wallMs, lastBeatMs, silentMs, config.staticFields, stalledSinceMs);
}

function report(result: FileResult, wallMs: number): void {
  if (result.err === 0) {
    Atomics.store(i32, S.ERRNO, 0);
    return;
  }
  Atomics.add(i64, S.ERRORS, 1n);
  Atomics.store(i32, S.ERROR_OP, result.op);
  Atomics.store(i64, S.ERROR_MS, BigInt(wallMs));
  Atomics.store(i32, S.ERRNO, result.err);
}

function tick(nowNs: bigint): void {
  const wall = Date.now();
  const silentNs = nowNs - Atomics.load(i64, S.ANSWER_NS);
  const answering = config.maxStallNs < 0n || silentNs <= config.maxStallNs;

  if (!answering) {
    Atomics.add(i64, S.WITHHELD, 1n);
    if (Atomics.load(i32, S.STALLED) === 0) {
      stalledSinceMs = wall - Number(silentNs) / 1e6;
      Atomics.store(i32, S.STALLED, 1);
    }
    // Say why, keeping the mtime at the last good beat: nothing fresh.
    const lastBeat = Number(Atomics.load(i64, S.LAST_BEAT_MS));
    const message = `stalled since ${iso(stalledSinceMs)}, loop silent for ${seconds(Number(silentNs) / 1e6)}; beats withheld`;
    const result = writeRecord(config.file, config.tmp, makeRecord('stalled', message, wall, lastBeat), lastBeat);
    if (result.err === 0) recordSaysStalled = true;
    report(result, wall);
    return;
  }

  Atomics.store(i32, S.STALLED, 0);
  let result: FileResult | undefined;
  let beaten = false;
  if (recordSaysStalled) {
    // The loop answers again: a fresh record, which is also this beat.
    const message = `event loop answering again since ${iso(wall)} after a stall that began ${iso(stalledSinceMs)}`;
    result = writeRecord(config.file, config.tmp, makeRecord('running', message, wall, wall), wall);
    beaten = result.err === 0;
    if (beaten) recordSaysStalled = false;
  }
  if (!beaten) {
    result = touch(config.file, wall);
    if (result.err === ENOENT) {
      // Deleted: re-create it (never its directory).
      result = writeRecord(config.file, config.tmp, makeRecord('running', 're-created after deletion', wall, wall), wall);
    }
  }
  report(result as FileResult, wall);
  if (result?.err === 0) {
    Atomics.add(i64, S.BEATS, 1n);
    Atomics.store(i64, S.LAST_BEAT_MS, BigInt(wall));
  }
}

function run(): void {
  const interval = config.intervalNs;
  let k = 1n; // deadline k is start + k * interval: beats never drift
  for (;;) {
    const deadline = config.startNs + k * interval;
    let t: bigint;
    for (;;) {
      const sequence = slot.wakeSequence(); // read before the checks: no lost wake-up
      if (stopRequested()) return;
      t = now();
      if (t >= deadline) break;
      slot.setPhase(Phase.parked);
      slot.park(sequence, Number(deadline - t) / 1e6);
      slot.setPhase(Phase.working);
    }
    if (Atomics.compareExchange(i32, S.RUN, idle, busy) !== idle) return;
    tick(t);
    const after = Atomics.compareExchange(i32, S.RUN, busy, idle);
    Atomics.notify(i32, S.RUN); // stop() may be waiting for this beat to end
    if (after !== busy) return;
    // Deadlines missed while the process was frozen (SIGSTOP) are skipped,
    // not replayed in a burst.
    const next = (t - config.startNs) / interval + 1n;
    k = next > k + 1n ? next : k + 1n;
  }
}

run();
slot.setPhase(Phase.exited);
