import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import { pulseError } from './errors';
import { HealthCheckRunner } from './health';
import { FILE_OPS, type NativeBinding, type NativeHandle } from './native';
import { pingIntervalMs, type ResolvedOptions } from './options';
import { describeFileFault, type PulseStatus, identityFields } from './status';

/** A running heartbeat. Returned by start(). */
export interface Pulse {
  readonly file: string;
  /** A snapshot of the heartbeat's state. */
  status(): PulseStatus;
  /** Idempotent; returns after the heartbeat thread has exited. */
  stop(): void;
}

// Pulses keep themselves reachable until stopped: a start() whose result is
// dropped must keep beating, not be collected.
const active = new Set<Pulse>();

/** The JSON members every record of this pulse carries (no env, no secrets). */
export function staticRecordFields(options: ResolvedOptions, strategy: string, startedAt: Date): string {
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
  return JSON.stringify(fields).slice(1, -1);
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
    this.#handle = new binding.PulseHandle(
      options.file,
      options.interval,
      options.maxStall,
      staticRecordFields(options, 'native', this.#startedAt),
      options.removeOnStop,
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
    };
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
