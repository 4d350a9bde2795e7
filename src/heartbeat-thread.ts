// The heartbeat thread of the worker strategy: the JavaScript twin of
// Heartbeat::Run and Heartbeat::Tick in native/heartbeat.cc. It runs in its own
// worker_threads Worker, so its beats are on time while the owner's event loop
// is busy, and it never returns to its own event loop until it stops.
import * as os from 'node:os';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Phase, Slot } from './claims';
import { inspectTarget, keptMtimeMs, touch, writeRecord, type FileResult } from './pulse-file';
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
// What the file's record currently says; this thread only. A record that
// withheld beats is replaced by a "running" one at the next beat.
let recordSays: 'running' | 'stalled' | 'unhealthy' = 'running';
// The health check's veto, as last received from the owner; null = none.
let veto: S.Veto | null = null;

function stopRequested(): boolean {
  return Atomics.load(i32, S.RUN) === stopped || !slot.held();
}

function makeRecord(state: RecordState, message: string, wallMs: number, lastBeatMs: number, extraFields = ''): string {
  const silentMs = Number((now() - Atomics.load(i64, S.ANSWER_NS)) / 1_000_000n);
  return record(state, message, wallMs, lastBeatMs, silentMs, config.staticFields, stalledSinceMs, extraFields);
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

/** The latest veto the owner sent; earlier ones are superseded. */
function readVeto(): S.Veto | null {
  for (let m = receiveMessageOnPort(config.vetoPort); m !== undefined; m = receiveMessageOnPort(config.vetoPort)) {
    const sent = m.message as S.Veto;
    veto = sent.message ? sent : null;
  }
  return veto;
}

/**
 * Writes a record that withholds the beat, its mtime the last beat or the
 * file's own when newer. `inspected` is the look taken at this deadline: a
 * fault there is reported and nothing is written.
 */
function writeWithheld(state: 'stalled' | 'unhealthy', message: string, extraFields: string, wall: number, inspected: FileResult): void {
  Atomics.add(i64, S.WITHHELD, 1n);
  let result = inspected;
  if (result.err === 0) {
    const lastBeat = Number(Atomics.load(i64, S.LAST_BEAT_MS));
    result = writeRecord(config.file, config.tmp, makeRecord(state, message, wall, lastBeat, extraFields), keptMtimeMs(config.file, lastBeat));
    if (result.err === 0) recordSays = state;
  }
  report(result, wall);
}

const ownerSpan = S.ownerSpanNs(config.ownerWaiters, config.intervalNs);

/**
 * False once the owner is gone: terminated, its runtime dropped its waiters
 * on OWNER, though it answered recently enough that some must be left.
 */
function ownerLives(silentNs: bigint): boolean {
  if (config.ownerWaiters === 0) return true;
  const woken = Atomics.notify(i32, S.OWNER, 1);
  if (woken > 0) {
    Atomics.add(i32, S.OWNER_WOKEN, woken);
    return true;
  }
  return silentNs > ownerSpan;
}

/** One deadline; false when the owner is gone and the thread must end. */
function tick(nowNs: bigint): boolean {
  const wall = Date.now();
  const silentNs = nowNs - Atomics.load(i64, S.ANSWER_NS);
  // A terminated owner: no beat, and the record keeps its last state, as
  // when the runtime ends this thread with its owner.
  if (!ownerLives(silentNs)) return false;
  const answering = config.maxStallNs < 0n || silentNs <= config.maxStallNs;

  // Look before every write: a directory, FIFO, socket, device or symlink
  // that appeared at the path after start is a fault, left exactly as found
  // (its times are not set and no record is renamed over it). Nothing is
  // followed in between either: the writes and the touch refuse links too.
  const inspected = inspectTarget(config.file);

  if (!answering) {
    // A silent loop outranks a failing health check: the check cannot run
    // while the loop is stuck, so its verdict would be stale.
    if (Atomics.load(i32, S.STALLED) === 0) {
      stalledSinceMs = wall - Number(silentNs) / 1e6;
      Atomics.store(i32, S.STALLED, 1);
    }
    // Say why, keeping the mtime at the last good beat: nothing fresh.
    const message = `stalled since ${iso(stalledSinceMs)}, loop silent for ${seconds(Number(silentNs) / 1e6)}; beats withheld`;
    writeWithheld('stalled', message, '', wall, inspected);
    return true;
  }
  Atomics.store(i32, S.STALLED, 0);

  // The loop answers; the health check (if any) may still veto the beat.
  const vetoed = readVeto();
  if (vetoed !== null) {
    Atomics.add(i64, S.VETOED, 1n);
    writeWithheld('unhealthy', vetoed.message, vetoed.fields, wall, inspected);
    return true;
  }

  let result: FileResult = inspected;
  if (result.err === 0) {
    const { missing } = inspected;
    let beaten = false;
    if (missing || recordSays !== 'running') {
      // Deleted: re-create it (never its directory). Or beats resume after a
      // withheld stretch: a fresh record. Either write is also this beat.
      const message = missing
        ? 're-created after deletion'
        : recordSays === 'stalled'
          ? `event loop answering again since ${iso(wall)} after a stall that began ${iso(stalledSinceMs)}`
          : `health check passing again since ${iso(wall)}`;
      result = writeRecord(config.file, config.tmp, makeRecord('running', message, wall, wall), wall);
      beaten = result.err === 0;
      if (beaten) recordSays = 'running';
    }
    if (!beaten && !missing) {
      result = touch(config.file, wall);
      if (result.err === ENOENT) {
        // Deleted between the look and the touch.
        result = writeRecord(config.file, config.tmp, makeRecord('running', 're-created after deletion', wall, wall), wall);
      }
    }
  }
  report(result, wall);
  if (result.err === 0) {
    Atomics.add(i64, S.BEATS, 1n);
    Atomics.store(i64, S.LAST_BEAT_MS, BigInt(wall));
  }
  return true;
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
    const owned = tick(t);
    const after = Atomics.compareExchange(i32, S.RUN, busy, idle);
    Atomics.notify(i32, S.RUN); // stop() may be waiting for this beat to end
    if (after !== busy || !owned) return;
    // Deadlines missed while the process was frozen (SIGSTOP) are skipped,
    // not replayed in a burst.
    const next = (t - config.startNs) / interval + 1n;
    k = next > k + 1n ? next : k + 1n;
  }
}

run();
slot.setPhase(Phase.exited);
