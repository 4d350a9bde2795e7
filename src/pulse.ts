import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import { checkLabel, logMode, previousField, previousRun, syscallTable, type PreviousRun } from './diagnosis';
import { pulseError, show } from './errors';
import { loadStack } from './stack';
import { HealthCheckRunner } from './health';
import { FILE_OPS, type NativeBinding, type NativeHandle } from './native';
import { checkExpectStall, pingIntervalMs, type ResolvedOptions } from './options';
import { describeFileFault, parseDiagnosis, type PulseStatus, identityFields } from './status';

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

export class NativePulse implements Pulse {
  readonly file: string;
  readonly #options: ResolvedOptions;
  readonly #handle: NativeHandle;
  readonly #startedAt = new Date();
  #ping: NodeJS.Timeout | undefined;
  #health: HealthCheckRunner | undefined;

  constructor(binding: NativeBinding, options: ResolvedOptions) {
    this.#options = options;
    this.file = options.file;
    const syscalls = syscallTable();
    // The stack capture piece for this Node's ABI, when there is one; the
    // handle owns the context it attaches (released when its thread ends).
    const stack = loadStack();
    const [stackApi, stackCtx] = 'attach' in stack ? stack.attach() : [undefined, undefined];
    this.#handle = new binding.PulseHandle(
      options.file,
      options.interval,
      options.maxStall,
      staticRecordFields(options, 'native', this.#startedAt, previousRun(options.file)),
      options.removeOnStop,
      logMode(options.logStalls),
      syscalls.names,
      syscalls.fdFirst,
      'unavailable' in stack ? stack.unavailable : '',
      stackApi,
      stackCtx,
    );
    const failure = this.#handle.start();
    if (failure !== null) {
      if (failure.op === 0 && failure.errno === os.constants.errno.EEXIST) {
        throw pulseError(Error, 'ERR_PULSE_FILE_IN_USE', `"${options.file}" is already pulsed by this process; stop that pulse first`, {
          path: options.file,
        });
      }
      const fault = describeFileFault(options.file, failure.errno, FILE_OPS[failure.op] ?? 'none');
      throw pulseError(Error, 'ERR_PULSE_FILE', `cannot use healthcheck file ${fault.message}`, {
        path: options.file,
        errno: failure.errno,
        syscallCode: fault.code,
      });
    }
    const handle = this.#handle;
    // The loop's answer: one native call that stores the monotonic time.
    this.#ping = setInterval(() => handle.answer(), pingIntervalMs(options.maxStall));
    this.#ping.unref();
    if (options.healthCheck) {
      this.#health = new HealthCheckRunner(options.healthCheck, options.healthCheckTimeout, options.interval,
        (message, fields) => handle.veto(message, fields));
    }
    active.add(this);
    hookExit();
  }

  status(): PulseStatus {
    const s = this.#handle.stats();
    const o = this.#options;
    const fault =
      s.errno !== 0 ? describeFileFault(o.file, s.errno, FILE_OPS[s.errorOp] ?? 'none') : undefined;
    return {
      running: s.running,
      strategy: 'native',
      ...identityFields(o, this.#startedAt),
      beats: s.beats,
      lastBeatAt: s.lastBeatMs > 0 ? new Date(s.lastBeatMs) : null,
      withheld: s.withheld,
      stalled: s.stalled,
      loopSilentMs: s.loopSilentMs,
      errors: s.errors,
      lastError: fault ? { code: fault.code, message: fault.message, at: new Date(s.errorMs) } : null,
      healthCheck: this.#health ? this.#health.status(s.vetoed) : null,
      stall: parseDiagnosis(this.#handle.stall()),
      lastStall: parseDiagnosis(this.#handle.lastStall()),
    };
  }

  track<T>(label: string, fn: () => T): T {
    const handle = this.#handle;
    return runTracked(
      (text) => handle.track(text),
      (id) => handle.untrack(id),
      label,
      fn,
    );
  }

  expectStall(seconds: number, reason?: string): void {
    const checked = checkExpectStall(seconds, reason);
    this.#handle.expectStall(checked.seconds, checked.reason);
  }

  stop(): void {
    if (this.#ping === undefined) return;
    clearInterval(this.#ping);
    this.#ping = undefined;
    this.#health?.stop();
    this.#handle.stop(this.#options.removeOnStop);
    active.delete(this);
  }
}

// process.exit() skips the addon's cleanup hook, which would leave the record
// saying "running": stopped here, the record says "stopped", as the worker
// strategy's (or the file is removed, with removeOnStop).
let exitHooked = false;
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const pulse of active) if (pulse instanceof NativePulse) pulse.stop();
  });
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
