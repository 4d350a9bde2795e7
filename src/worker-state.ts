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
const I64_WORDS = 7;

// Int32 words, after the BigInt64 ones.
export const RUN = 0; // RunState: the stop handshake
export const STALLED = 1; // 1 from the first withheld deadline until the loop answers; thread writes
export const ERRNO = 2; // last fault's errno, 0 = none (cleared by the next success); thread writes
export const ERROR_OP = 3; // last fault's FILE_OPS index; thread writes
const I32_WORDS = 4;

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
  startNs: bigint; // monotonic time of the first beat; deadline k is start + k * interval
  staticFields: string;
  state: SharedArrayBuffer;
  claims: SharedArrayBuffer;
  slot: number;
  gen: number;
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
