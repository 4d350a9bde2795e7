// The native strategy's facade: a Pulse whose heartbeat is the addon's OS
// thread (native/heartbeat.cc), answered by an unref'd timer on this loop.
import * as os from 'node:os';
import { logMode, OWN_FILES, previousRun, syscallTable } from '../diagnosis/diagnosis';
import { pulseError } from '../contract/errors';
import { HealthCheckRunner } from '../contract/health';
import { listenError, packageVersion, runtimeName } from '../contract/endpoint';
import { checkExpectStall, pingIntervalMs, type ResolvedOptions } from '../contract/options';
import { activePulses, runTracked, staticRecordFields, trackPulse, untrackPulse, type Pulse } from '../contract/pulse';
import { describeFileFault, parseDiagnosis, type PulseStatus, identityFields } from '../contract/status';
import { FILE_OPS, type NativeBinding, type NativeHandle } from './loader';
import { loadStack } from './stack';
import { claimSystemd, releaseSystemd, systemdOff, systemdStatus, type SystemdPlan } from '../contract/systemd';

export class NativePulse implements Pulse {
  readonly file: string;
  readonly #options: ResolvedOptions;
  readonly #handle: NativeHandle;
  readonly #startedAt = new Date();
  #ping: NodeJS.Timeout | undefined;
  #health: HealthCheckRunner | undefined;
  readonly #systemd: SystemdPlan | null;

  constructor(binding: NativeBinding, options: ResolvedOptions) {
    this.#options = options;
    this.file = options.file;
    const syscalls = syscallTable();
    // The stack capture piece for this Node's ABI, when there is one; the
    // handle owns the context it attaches (released when its thread ends).
    const stack = loadStack();
    const [stackApi, stackCtx] = 'attach' in stack ? stack.attach() : [undefined, undefined];
    const systemd = (this.#systemd = claimSystemd(options, this));
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
      options.exitOnStall,
      systemd?.socket ?? '',
      systemd?.watchdogUsec ?? 0,
      OWN_FILES,
      options.nativeStack,
    );
    // The endpoint binds before anything starts: a bad address throws with
    // no thread started and the file untouched.
    const listen = options.listen;
    // A binary from before the endpoint (a stale local build) still beats;
    // it only cannot listen.
    if (typeof this.#handle.endpoint === 'function') {
      const bindFailure = this.#handle.endpoint(packageVersion(), runtimeName(), options.interval, options.maxStall,
        listen ? listen.host : null, listen ? listen.port : 0);
      if (bindFailure !== null && listen) throw listenError(listen, bindFailure.errno, bindFailure.op);
    } else if (listen) {
      throw pulseError(Error, 'ERR_PULSE_NATIVE_UNAVAILABLE', 'the loaded addon binary predates option "listen": rebuild it (npm run build:native)');
    }
    const failure = this.#handle.start();
    if (failure !== null) {
      releaseSystemd(this);
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
    trackPulse(this);
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
      exitOnStall: o.exitOnStall > 0 ? o.exitOnStall : false,
      systemd: this.#systemd ? systemdStatus(this.#systemd, s.notifySent, s.notifyErrno, s.notifyErrorMs) : systemdOff(null),
      listen: this.#handle.listenAddress(),
    };
  }

  ready(): void {
    if (this.#systemd && this.#ping !== undefined) this.#handle.ready();
  }

  metrics(): string {
    return this.#handle.metrics();
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
    releaseSystemd(this);
    untrackPulse(this);
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
    for (const pulse of activePulses()) if (pulse instanceof NativePulse) pulse.stop();
  });
}

