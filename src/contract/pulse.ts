// What both strategies share: the Pulse a start() returns, track()'s
// bookkeeping, the record's fixed members, and the pulses still running.
import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import { checkLabel, previousField, type PreviousRun } from '../diagnosis/diagnosis';
import { pulseError, show } from './errors';
import type { ResolvedOptions } from './options';
import type { PulseStatus } from './status';

/** A running heartbeat. Returned by start(). */
export interface Pulse {
  readonly file: string;
  /** A snapshot of the heartbeat's state. */
  status(): PulseStatus;
  /** Idempotent; returns after the heartbeat thread has exited. */
  stop(): void;
  /**
   * Runs `fn` (sync or async) and returns what it returns; until it returns or
   * settles, `label` is listed in `active` by a stall's diagnosis.
   */
  track<T>(label: string, fn: () => T): T;
  /**
   * A known long synchronous step follows: silence up to `seconds` from now
   * withholds no beat, and the record says so. Silence past it is a stall.
   */
  expectStall(seconds: number, reason?: string): void;
  /**
   * Tells systemd the service is ready (READY=1, for Type=notify units). Does
   * nothing for a pulse that does not talk to systemd; a failed send shows in
   * status().systemd.lastError.
   */
  ready(): void;
  /**
   * The /metrics exposition text (Prometheus format 0.0.4), for an app that
   * already serves metrics: append it to prom-client's register.metrics().
   */
  metrics(): string;
}

/** track() for both strategies: `begin` lists the label, `end` drops it. */
export function runTracked<T>(begin: (label: string) => number, end: (id: number) => void, label: unknown, fn: unknown): T {
  const text = checkLabel(label);
  if (typeof fn !== 'function') {
    throw pulseError(TypeError, 'ERR_PULSE_INVALID_ARGUMENT', `track(label, fn): fn must be a function, got ${show(fn)}`, {
      argument: 'fn',
      value: fn,
    });
  }
  const id = begin(text);
  let result: T;
  try {
    result = (fn as () => T)();
  } catch (error) {
    end(id);
    throw error;
  }
  const then = (result as { then?: unknown } | null)?.then;
  if (typeof then === 'function') {
    // The caller gets fn's own promise; this side chain only ends the label.
    const done = () => end(id);
    then.call(result, done, done);
  } else {
    end(id);
  }
  return result;
}

// Pulses keep themselves reachable until stopped: a start() whose result is
// dropped must keep beating, not be collected.
const active = new Set<Pulse>();

/** The JSON members every record of this pulse carries (no env, no secrets). */
export function staticRecordFields(options: ResolvedOptions, strategy: string, startedAt: Date, previous: PreviousRun | null): string {
  const fields = {
    pid: process.pid,
    threadId,
    hostname: os.hostname(),
    startedAt: startedAt.toISOString(),
    file: options.file,
    interval: options.interval,
    maxStall: Number.isFinite(options.maxStall) ? options.maxStall : 'inf',
    strategy,
  };
  const previousMember = previousField(previous);
  return JSON.stringify(fields).slice(1, -1) + (previousMember ? `,${previousMember}` : '');
}

export function trackPulse(pulse: Pulse): void {
  active.add(pulse);
}

export function untrackPulse(pulse: Pulse): void {
  active.delete(pulse);
}

/** Pulses started in this environment and not yet stopped. */
export function activePulses(): readonly Pulse[] {
  return [...active];
}
