// Which files the worker strategy pulses in this process, so that a second
// pulse on the same file fails with ERR_PULSE_FILE_IN_USE whichever thread
// starts it. The addon keeps its own registry in C++; this one is for worker
// pulses.
//
// Threads share no JavaScript state, so the registry is a SharedArrayBuffer
// handed down through worker_threads environment data: the first thread that
// loads this module creates it, and every Worker it (or its workers) starts
// afterwards inherits the same memory. That covers the usual shapes: the main
// thread loads the package (often via --require) before it starts workers.
// Threads with no common ancestor that loaded the package get separate
// registries.
//
// A pulse whose thread was terminated (worker.terminate()) never releases its
// claim: no JavaScript runs there again. So a claim on the same file is
// checked for life before it is refused. A heartbeat thread spends its time
// parked in Atomics.wait on its slot's `park` word, and Atomics.notify reports
// how many waiters it woke: a parked, live thread answers at once, a dead one
// never. Outside the wait it is "working", and counts as live while its last
// sign of life is recent.
import { createHash } from 'node:crypto';
import { getEnvironmentData, setEnvironmentData, threadId } from 'node:worker_threads';

const ENV_KEY = 'celery-pulse-native:claims:v1';
export const SLOTS = 1024;
const SLOT_BYTES = 32;

// Header, Int32 words.
const LOCK = 0; // threadId + 1 of the thread in the critical section, or 0
const WARNED = 1; // 1 once the "no native addon" warning was emitted
const CURSOR = 2; // where the next free-slot search begins
// Slot fields: BigInt64 words from the slot's first 64-bit word...
const KEY = 0; // hash of the canonical path
const SEEN = 1; // monotonic ns of the heartbeat thread's last phase change
// ...and Int32 words from the slot's first 32-bit word.
const STATE = 4; // FREE or CLAIMED
const GEN = 5; // bumped by every claim and release, so a stale holder can tell
const PARK = 6; // the heartbeat thread waits here; bumped to wake it
const PHASE = 7; // what the heartbeat thread is doing (Phase)

const FREE = 0;
const CLAIMED = 1;

export const Phase = {
  booting: 1, // claimed; the heartbeat thread has not run yet
  parked: 2, // in Atomics.wait on PARK
  working: 3, // between waits: checking the gate or writing the file
  exited: 4,
} as const;
export type Phase = (typeof Phase)[keyof typeof Phase];

// A claim whose thread was last seen working this long ago is stale.
const STALE_NS = 10_000_000_000n;
// A critical section held this long belongs to a thread that died inside it.
const LOCK_STALE_NS = 1_000_000_000n;
const PROBE_ATTEMPTS = 20;

const now = () => process.hrtime.bigint();

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => void Atomics.wait(sleeper, 0, 0, ms);

/** This thread's view of the shared registry, created if no ancestor made one. */
export function registry(): SharedArrayBuffer {
  const inherited = getEnvironmentData(ENV_KEY);
  if (inherited instanceof SharedArrayBuffer) return inherited;
  const sab = new SharedArrayBuffer(SLOT_BYTES * (SLOTS + 1));
  setEnvironmentData(ENV_KEY, sab);
  return sab;
}

// At load, not at the first claim: workers started between loading the
// package and starting a pulse must inherit the same registry.
registry();

/** One slot of the registry, as seen by the owner and by the heartbeat thread. */
export class Slot {
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #w32: number;
  readonly #w64: number;

  constructor(
    readonly sab: SharedArrayBuffer,
    readonly index: number,
    readonly gen: number,
  ) {
    this.#i32 = new Int32Array(sab);
    this.#i64 = new BigInt64Array(sab);
    this.#w32 = ((index + 1) * SLOT_BYTES) / 4;
    this.#w64 = ((index + 1) * SLOT_BYTES) / 8;
  }

  /** False once released, or taken over by another claim. */
  held(): boolean {
    return Atomics.load(this.#i32, this.#w32 + GEN) === this.gen && Atomics.load(this.#i32, this.#w32 + STATE) === CLAIMED;
  }

  /** Heartbeat thread: records what it is doing (the time first, for probes). */
  setPhase(phase: Phase): void {
    if (!this.held()) return;
    Atomics.store(this.#i64, this.#w64 + SEEN, now());
    Atomics.store(this.#i32, this.#w32 + PHASE, phase);
  }

  /** Heartbeat thread: the wake sequence to pass to park(). */
  wakeSequence(): number {
    return Atomics.load(this.#i32, this.#w32 + PARK);
  }

  /** Heartbeat thread: waits until woken, or `ms` elapse; returns at once if woken since `sequence`. */
  park(sequence: number, ms: number): void {
    Atomics.wait(this.#i32, this.#w32 + PARK, sequence, ms);
  }

  /** Wakes the heartbeat thread (it re-checks its stop flag and deadline). */
  wake(): void {
    Atomics.add(this.#i32, this.#w32 + PARK, 1);
    Atomics.notify(this.#i32, this.#w32 + PARK);
  }

  /** Frees the slot if this claim still holds it. Idempotent. */
  release(): void {
    locked(this.#i32, () => {
      if (this.held()) free(this.#i32, this.#w32);
    });
  }
}

function free(i32: Int32Array, w32: number): void {
  Atomics.add(i32, w32 + GEN, 1);
  Atomics.store(i32, w32 + STATE, FREE);
}

function locked<T>(i32: Int32Array, fn: () => T): T {
  const me = threadId + 1;
  let holder = 0;
  let since = 0n;
  for (;;) {
    const seen = Atomics.compareExchange(i32, LOCK, 0, me);
    if (seen === 0) break;
    if (seen !== holder) {
      holder = seen;
      since = now();
    } else if (now() - since > LOCK_STALE_NS && Atomics.compareExchange(i32, LOCK, seen, me) === seen) {
      break; // the holder was terminated inside the critical section
    }
    Atomics.wait(i32, LOCK, seen, 1);
  }
  try {
    return fn();
  } finally {
    Atomics.compareExchange(i32, LOCK, me, 0);
    Atomics.notify(i32, LOCK, 1);
  }
}

/** Whether the pulse holding slot `w32` still has a heartbeat thread. */
function alive(i32: Int32Array, i64: BigInt64Array, w32: number, w64: number): boolean {
  for (let attempt = 0; attempt < PROBE_ATTEMPTS; attempt++) {
    const phase = Atomics.load(i32, w32 + PHASE);
    if (phase === Phase.exited) return false;
    if (phase !== Phase.parked) return now() - Atomics.load(i64, w64 + SEEN) < STALE_NS;
    // A spurious wake-up for a live thread: it re-checks and parks again.
    if (Atomics.notify(i32, w32 + PARK, 1) > 0) return true;
    sleep(1); // it may be between "parked" and the wait itself
  }
  return false;
}

function hashKey(key: string): bigint {
  return createHash('sha256').update(key).digest().readBigInt64LE(0);
}

export type ClaimResult = { slot: Slot } | { inUse: true } | { full: true };

/** Claims `key` (a canonical path) for this process unless a live pulse holds it. */
export function claim(key: string): ClaimResult {
  const sab = registry();
  const i32 = new Int32Array(sab);
  const i64 = new BigInt64Array(sab);
  const hash = hashKey(key);
  const w32 = (s: number) => ((s + 1) * SLOT_BYTES) / 4;
  const w64 = (s: number) => ((s + 1) * SLOT_BYTES) / 8;
  return locked(i32, (): ClaimResult => {
    for (let s = 0; s < SLOTS; s++) {
      if (Atomics.load(i32, w32(s) + STATE) !== CLAIMED || Atomics.load(i64, w64(s) + KEY) !== hash) continue;
      if (alive(i32, i64, w32(s), w64(s))) return { inUse: true };
      free(i32, w32(s)); // its thread was terminated without stop()
    }
    // Next fit: a just-released slot is reused last, long after its old
    // heartbeat thread has gone.
    const start = Atomics.load(i32, CURSOR);
    for (let n = 0; n < SLOTS; n++) {
      const s = (start + n) % SLOTS;
      if (Atomics.load(i32, w32(s) + STATE) !== FREE) continue;
      Atomics.store(i32, CURSOR, (s + 1) % SLOTS);
      const gen = Atomics.add(i32, w32(s) + GEN, 1) + 1;
      Atomics.store(i64, w64(s) + KEY, hash);
      Atomics.store(i64, w64(s) + SEEN, now());
      Atomics.store(i32, w32(s) + PHASE, Phase.booting);
      Atomics.store(i32, w32(s) + STATE, CLAIMED);
      return { slot: new Slot(sab, s, gen) };
    }
    return { full: true };
  });
}

/** True for the first caller in the process (per registry), false afterwards. */
export function firstTime(): boolean {
  return Atomics.compareExchange(new Int32Array(registry()), WARNED, 0, 1) === 0;
}
