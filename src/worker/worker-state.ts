// The memory a worker-strategy pulse shares between its owner (the thread that
// called start()) and its heartbeat thread. Every access is an Atomics
// operation; times are BigInt nanoseconds (monotonic) or milliseconds (wall).

import type { MessagePort } from 'node:worker_threads';

// BigInt64 words.
export const ANSWER_NS = 0; // monotonic ns of the loop's last answer; owner writes, thread reads
export const BEATS = 1; // successful touches; thread writes (owner before it starts)
export const WITHHELD = 2; // deadlines withheld: loop silent or vetoed; thread writes
export const ERRORS = 3; // failed file operations; thread writes
export const LAST_BEAT_MS = 4; // wall ms of the last beat; thread writes (owner before it starts)
export const ERROR_MS = 5; // wall ms of the last fault; thread writes
export const VETOED = 6; // of the withheld deadlines, those vetoed by the health check; thread writes
export const STALLS = 7; // stalls begun; thread writes
export const STALL_NS_ENDED = 8; // ns stalled in the stalls that ended; thread writes
export const STALL_BEGAN_NS = 9; // monotonic ns the ongoing stall began (0: none); thread writes
export const DELAY_COUNT = 10; // the loop-delay histogram: answers; owner writes
export const DELAY_SUM_NS = 11; // ... the sum of their delays; owner writes
export const DELAY_BUCKETS = 12; // ... 12 words, one per finite bucket (not cumulative); owner writes
export const ACTIVE_JOBS = 24; // track() labels running; owner writes
const I64_WORDS = 25;

// Int32 words, after the BigInt64 ones.
export const RUN = 0; // RunState: the stop handshake
export const STALLED = 1; // 1 from the first withheld deadline until the loop answers; thread writes
export const ERRNO = 2; // last fault's errno, 0 = none (cleared by the next success); thread writes
export const ERROR_OP = 3; // last fault's FILE_OPS index; thread writes
// The owner's sign of life (see ownerWaiters): always 0. The owner keeps
// Atomics.waitAsync waiters on it, the thread wakes one per deadline.
export const OWNER = 4;
export const OWNER_WOKEN = 5; // waiters the thread has woken so far; thread writes, owner reads
// Odd while the thread changes STALL_NS_ENDED and STALL_BEGAN_NS, so a reader
// sees them as a pair; thread writes.
export const STALL_GEN = 6;
const I32_WORDS = 7;

// Waiters the owner keeps on OWNER. A runtime drops the waiters of a thread
// it terminates (Node, Deno and Bun all do), so a deadline that wakes none,
// while the owner answered recently enough that some must be left, means the
// owner is gone: the heartbeat ends there, with no beat after it. Deno, unlike
// Node, leaves a terminated thread's own workers running, so this is what
// ends them there. Each ping tops them up; a silent owner loses one per
// deadline, so there are enough for the span the thread checks.
export const MAX_OWNER_WAITERS = 64;
export function ownerWaiters(intervalNs: bigint, maxStallNs: bigint): number {
  if (maxStallNs < 0n) return MAX_OWNER_WAITERS;
  const wanted = Number((maxStallNs + intervalNs - 1n) / intervalNs) + 4;
  return Math.min(MAX_OWNER_WAITERS, wanted);
}
/** Owner silence within which an owner with waiters left must have some: 3 deadlines of slack. */
export function ownerSpanNs(waiters: number, intervalNs: bigint): bigint {
  return BigInt(Math.max(0, waiters - 3)) * intervalNs;
}

/**
 * The thread takes IDLE -> BUSY before touching the file and BUSY -> IDLE
 * after; stop() takes IDLE -> STOPPED, waiting out a BUSY. Once STOPPED the
 * thread's next compare-exchange fails and it exits without another file
 * operation, so stop() can return without waiting for the thread to end.
 */
export const RunState = { idle: 0, busy: 1, stopped: 2 } as const;

export interface StateViews {
  i64: BigInt64Array;
  i32: Int32Array;
}

export function createState(): SharedArrayBuffer {
  return new SharedArrayBuffer(I64_WORDS * 8 + I32_WORDS * 4);
}

export function views(sab: SharedArrayBuffer): StateViews {
  return { i64: new BigInt64Array(sab, 0, I64_WORDS), i32: new Int32Array(sab, I64_WORDS * 8, I32_WORDS) };
}

/** What the heartbeat thread gets as workerData. */
export interface HeartbeatConfig {
  file: string;
  tmp: string;
  intervalNs: bigint;
  maxStallNs: bigint; // < 0: the gate is off
  exitOnStallNs: bigint; // 0: exitOnStall is off
  startNs: bigint; // monotonic time of the first beat; deadline k is start + k * interval
  staticFields: string;
  state: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  slot: number;
  gen: number;
  /** The waiters the owner keeps on OWNER; 0: no Atomics.waitAsync, no check. */
  ownerWaiters: number;
  /**
   * Owner to thread: ToThread messages (the health check's veto, track()
   * labels, expectStall()). Thread to owner: ToOwner messages (the
   * diagnosis, for status()). Each side reads with receiveMessageOnPort: the
   * thread at each deadline (it never returns to its own event loop while it
   * runs), the owner in status(); messages posted before the owner got stuck
   * are there for the thread to read while it is stuck.
   */
  port: MessagePort;
  /** The owner's thread, as /proc/self/task/<tid> names it: the one a stall diagnoses. */
  ownerTid: number;
  /** 0 off, 1 text, 2 JSON (diagnosis.logMode). */
  logStalls: number;
}

/** A failing health check's verdict: the record's message and extra JSON members; '' lifts it. */
export interface Veto {
  kind: 'veto';
  message: string;
  fields: string;
}

export type ToThread =
  | Veto
  | { kind: 'track'; id: number; label: string; sinceMs: number }
  | { kind: 'untrack'; id: number }
  | { kind: 'expect'; untilNs: bigint; seconds: number; reason: string };

/** The current stall's diagnosis and the last one's, as JSON text ('' = none). */
export interface ToOwner {
  kind: 'diagnosis';
  stall: string;
  lastStall: string;
}

/**
 * A heartbeat thread serves one pulse after another (heartbeat-thread.ts): its
 * owner's thread keeps the threads of stopped pulses for the next start(),
 * posting each a pulse's config on its pool port. POOL_STATE, the one Int32
 * word of a per-thread buffer, is `taken` while a pulse runs or one is being
 * handed over, `open` once its pulse stopped (the owner sets it), `closed` by
 * the thread when it ends after POOL_IDLE_MS open: the owner takes a thread
 * by open -> taken, the thread closes by open -> closed, so never both.
 */
export const POOL_STATE = 0;
export const PoolState = { taken: 0, open: 1, closed: 2 } as const;
export const POOL_IDLE_MS = 2000;

export function createPool(): SharedArrayBuffer {
  return new SharedArrayBuffer(4);
}

/** What a heartbeat thread gets as workerData: its pool words and port, and its first pulse. */
export interface ThreadBoot {
  pool: SharedArrayBuffer;
  poolPort: MessagePort;
  first: HeartbeatConfig;
}
