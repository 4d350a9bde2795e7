// The worker strategy: the same gated heartbeat as the addon, with a
// worker_threads Worker as the heartbeat thread. This side runs on the thread
// that called start(): it performs the first beat, answers the gate's ping,
// reads status() from shared memory and stops the thread.
import * as path from 'node:path';
import { isMainThread, MessageChannel, receiveMessageOnPort, threadId, Worker, type MessagePort } from 'node:worker_threads';
import { claim, type Slot } from './claims';
import { currentTid, logMode, previousRun } from '../diagnosis/diagnosis';
import { pulseError } from '../contract/errors';
import { HealthCheckRunner } from '../contract/health';
import { FILE_OPS } from '../native/loader';
import { checkExpectStall, pingIntervalMs, type ResolvedOptions } from '../contract/options';
import * as pulseFile from './pulse-file';
import { exactWallMs } from './clock';
import { runTracked, staticRecordFields, trackPulse, untrackPulse, type Pulse } from '../contract/pulse';
import { iso, record } from '../contract/record';
import { describeFileFault, parseDiagnosis, type PulseLastError, type PulseStatus, identityFields } from '../contract/status';
import * as S from './worker-state';
import { systemdOff } from '../contract/systemd';

const WORKER_NO_SYSTEMD =
  'the "worker" strategy cannot send to NOTIFY_SOCKET (Node has no datagram Unix sockets); the native strategy can';
import { observeAnswer, workerMetrics } from './worker-metrics';
import { startEndpoint, type EndpointHandle } from './endpoint';

const THREAD_SCRIPT = path.join(__dirname, 'heartbeat-thread.js');
// The thread starts from a one-line CommonJS script that requires it: Deno
// would load the .js file itself as an ES module when the app's folder has no
// package.json saying otherwise.
const THREAD_BOOT = `require(${JSON.stringify(THREAD_SCRIPT)});`;
// stop() waits this long for a beat in progress (a hung file system) before it
// terminates the thread instead.
const STOP_WAIT_MS = 1000;

// Atomics.waitAsync is ES2024; the runtimes this package supports all have it.
type WaitAsync = (view: Int32Array, index: number, value: number) => unknown;
const waitAsync = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;

// Temporary file names carry the threadId, so a per-thread counter makes them
// unique in the process.
let tmpCount = 0;

// Stopped at 'exit' (natural end, process.exit(), an uncaught exception) so the
// file is left as stop() leaves it ("stopped", or removed with removeOnStop),
// as the addon's environment cleanup hook does. A worker thread ended by
// worker.terminate() emits no 'exit' and runs no JavaScript at all as it goes
// (Node disallows it during the teardown), so there the file keeps its last
// record and goes stale: the addon's native cleanup hook has no JS twin.
const atExit = new Set<() => void>();
let exitHooked = false;
function stopAllAtExit(): void {
  for (const stop of atExit) stop();
}

/**
 * A heartbeat thread of this thread's and the pulse it serves. A stopped
 * pulse's thread is kept for the next start() (see S.POOL_IDLE_MS), so
 * start/stop cycles do not pay for, and leave memory behind from, an isolate
 * each.
 */
class HeartbeatThread {
  readonly #words = new Int32Array(S.createPool());
  readonly #port: MessagePort; // to the thread: the next pulse's config
  readonly worker: Worker;
  pulse: WorkerPulse | null;

  constructor(first: S.HeartbeatConfig, pulse: WorkerPulse) {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    port1.unref();
    this.pulse = pulse;
    // No env and no execArgv: preloads (--require, NODE_OPTIONS) must not
    // run in the heartbeat thread. A small young generation keeps its RSS
    // down; the old-generation cap leaves room for Node's bootstrap (about
    // 4 MB on Node 20) and bounds a runaway heap.
    this.worker = new Worker(THREAD_BOOT, {
      eval: true,
      workerData: { pool: this.#words.buffer as SharedArrayBuffer, poolPort: port2, first } satisfies S.ThreadBoot,
      transferList: [port2, first.port],
      env: {},
      execArgv: [],
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32 },
    });
    this.worker.unref();
    // Only a defect or exhausted resources end the thread early: the file
    // then goes stale, as it should, and status() says why.
    this.worker.on('error', (error: Error & { code?: string }) => this.pulse?.threadFailed(error));
    this.worker.on('exit', () => {
      Atomics.store(this.#words, S.POOL_STATE, S.PoolState.closed);
      const at = idleThreads.indexOf(this);
      if (at >= 0) idleThreads.splice(at, 1);
    });
  }

  /** Hands the thread its next pulse; false when it has ended meanwhile. */
  take(config: S.HeartbeatConfig, pulse: WorkerPulse): boolean {
    if (Atomics.compareExchange(this.#words, S.POOL_STATE, S.PoolState.open, S.PoolState.taken) !== S.PoolState.open) {
      return false;
    }
    this.pulse = pulse;
    this.#port.postMessage(config, [config.port]);
    return true;
  }

  /** Its pulse stopped: kept for the next start() until the thread ends by itself. */
  release(): void {
    this.pulse = null;
    Atomics.store(this.#words, S.POOL_STATE, S.PoolState.open);
    idleThreads.push(this);
  }
}

// This thread's heartbeat threads whose pulses stopped, newest last.
const idleThreads: HeartbeatThread[] = [];

function heartbeatThread(config: S.HeartbeatConfig, pulse: WorkerPulse): HeartbeatThread {
  for (let thread = idleThreads.pop(); thread !== undefined; thread = idleThreads.pop()) {
    if (thread.take(config, pulse)) return thread;
  }
  return new HeartbeatThread(config, pulse);
}

function fileError(file: string, failure: pulseFile.FileResult): Error {
  const fault = describeFileFault(file, failure.err, FILE_OPS[failure.op] ?? 'none');
  return pulseError(Error, 'ERR_PULSE_FILE', `cannot use healthcheck file ${fault.message}`, {
    path: file,
    errno: failure.err,
    syscallCode: fault.code,
  });
}

export class WorkerPulse implements Pulse {
  readonly file: string;
  readonly #options: ResolvedOptions;
  readonly #startedAt = new Date();
  readonly #staticFields: string;
  readonly #state = S.createState();
  readonly #i64: BigInt64Array;
  readonly #i32: Int32Array;
  readonly #slot: Slot;
  readonly #tmp: string; // this thread's record writes; the heartbeat thread has its own
  readonly #thread: HeartbeatThread;
  readonly #port: MessagePort; // this side of the channel to the heartbeat thread
  #diagnosis: S.ToOwner = { kind: 'diagnosis', stall: '', lastStall: '' }; // the latest the thread sent
  #nextTrackId = 1;
  #portOpen = true;
  #ping: NodeJS.Timeout | undefined;
  #health: HealthCheckRunner | undefined;
  #threadError: PulseLastError | null = null;
  #ownerWaiters = 0; // waiters to keep on S.OWNER; owner thread only
  #armed = 0; // waiters armed minus those seen woken; owner thread only
  #wokenSeen = 0; // S.OWNER_WOKEN when last read; owner thread only
  readonly #endpoint: EndpointHandle | undefined; // with listen
  readonly #atExit = () => this.#stop(this.#options.removeOnStop);
  // Why this pulse does not talk to systemd although it would be the one to.
  readonly #systemdNote: string | null;

  constructor(options: ResolvedOptions) {
    this.#options = options;
    this.#systemdNote = options.systemd && isMainThread && process.env.NOTIFY_SOCKET ? WORKER_NO_SYSTEMD : null;
    const file = (this.file = options.file);
    ({ i64: this.#i64, i32: this.#i32 } = S.views(this.#state));
    // The endpoint binds first: a bad address throws with nothing else started.
    const endpoint = (this.#endpoint = options.listen ? startEndpoint(options, this.#state) : undefined);
    this.#staticFields =
      staticRecordFields(options, 'worker', this.#startedAt, previousRun(file)) +
      (endpoint ? `,"listen":${JSON.stringify(endpoint.address)}` : '');
    try {
      let result = pulseFile.makeParents(file);
      if (result.err !== 0) throw fileError(file, result);
      const canonical = pulseFile.canonicalKey(file);
      if ('failure' in canonical) throw fileError(file, canonical.failure);
      const claimed = claim(canonical.key);
      if ('inUse' in claimed) {
        throw pulseError(Error, 'ERR_PULSE_FILE_IN_USE', `"${file}" is already pulsed by this process; stop that pulse first`, {
          path: file,
        });
      }
      if ('full' in claimed) {
        throw pulseError(Error, 'ERR_PULSE_TOO_MANY', 'too many "worker" strategy pulses in this process; stop some first');
      }
      this.#slot = claimed.slot;

      try {
        this.#tmp = pulseFile.tmpPath(file, threadId, tmpCount++);
        const threadTmp = pulseFile.tmpPath(file, threadId, tmpCount++);
        result = pulseFile.inspectTarget(file);
        const startNs = process.hrtime.bigint();
        Atomics.store(this.#i64, S.ANSWER_NS, startNs);
        const startedAt = exactWallMs(); // the first beat's mtime
        const wall = Math.floor(startedAt);
        if (result.err === 0) {
          const content = record('running', 'started', wall, wall, 0, this.#staticFields);
          result = pulseFile.writeRecord(file, this.#tmp, content, startedAt);
        }
        if (result.err !== 0) throw fileError(file, result);
        Atomics.store(this.#i64, S.BEATS, 1n);
        Atomics.store(this.#i64, S.LAST_BEAT_MS, BigInt(wall));

        const intervalNs = BigInt(Math.round(options.interval * 1e9));
        const maxStallNs = Number.isFinite(options.maxStall) ? BigInt(Math.round(options.maxStall * 1e9)) : -1n;
        const { port1, port2 } = new MessageChannel();
        this.#port = port1;
        port1.unref();
        const config: S.HeartbeatConfig = {
          file,
          tmp: threadTmp,
          intervalNs,
          maxStallNs,
          exitOnStallNs: BigInt(Math.round(options.exitOnStall * 1e9)),
          startNs,
          staticFields: this.#staticFields,
          state: this.#state,
          claims: this.#slot.sab,
          slot: this.#slot.index,
          gen: this.#slot.gen,
          port: port2,
          ownerTid: currentTid(),
          logStalls: logMode(options.logStalls),
          ownerWaiters: waitAsync ? S.ownerWaiters(intervalNs, maxStallNs) : 0,
        };
        this.#ownerWaiters = config.ownerWaiters;
        this.#arm();
        this.#thread = heartbeatThread(config, this);
      } catch (error) {
        Atomics.notify(this.#i32, S.OWNER); // the waiters armed for a thread that never started
        this.#slot.release();
        throw error;
      }
    } catch (error) {
      endpoint?.close();
      throw error;
    }

    // Node puts a socket stderr in non-blocking mode once process.stderr is
    // used: the heartbeat thread then writes the stall block there without
    // ever blocking (it drops the block on a blocking socket).
    if (options.logStalls !== false && isMainThread) void process.stderr;
    const i64 = this.#i64;
    const pingMs = pingIntervalMs(options.maxStall);
    // The loop's answer: one atomic store of the monotonic time (how late it
    // came goes into the loop-delay histogram), and the owner's waiters
    // topped up.
    this.#ping = setInterval(() => {
      const t = process.hrtime.bigint();
      this.#arm();
      observeAnswer(i64, t, pingMs * 1e6);
      Atomics.store(i64, S.ANSWER_NS, t);
    }, pingMs);
    this.#ping.unref();
    if (options.healthCheck) {
      const port = this.#port;
      this.#health = new HealthCheckRunner(options.healthCheck, options.healthCheckTimeout, options.interval,
        (message, fields) => port.postMessage({ kind: 'veto', message, fields } satisfies S.Veto));
    }
    atExit.add(this.#atExit);
    trackPulse(this);
    if (!exitHooked) {
      exitHooked = true;
      process.on('exit', stopAllAtExit);
    }
  }

  /** The heartbeat thread ended early: status() says why. */
  threadFailed(error: Error & { code?: string }): void {
    this.#threadError = {
      code: error.code ?? 'EWORKER',
      message: `the heartbeat thread of "${this.file}" ended: ${error.message}`,
      at: new Date(),
    };
  }

  /** Keeps #ownerWaiters waiters on S.OWNER: the heartbeat thread's proof that this thread lives. */
  #arm(): void {
    if (!waitAsync) return;
    const woken = Atomics.load(this.#i32, S.OWNER_WOKEN);
    this.#armed = Math.max(0, this.#armed - (woken - this.#wokenSeen));
    this.#wokenSeen = woken;
    for (; this.#armed < this.#ownerWaiters; this.#armed++) waitAsync(this.#i32, S.OWNER, 0);
  }

  status(): PulseStatus {
    const o = this.#options;
    const i64 = this.#i64;
    const errno = Atomics.load(this.#i32, S.ERRNO);
    const fault =
      errno !== 0 ? describeFileFault(o.file, errno, FILE_OPS[Atomics.load(this.#i32, S.ERROR_OP)] ?? 'none') : undefined;
    const lastBeatMs = Number(Atomics.load(i64, S.LAST_BEAT_MS));
    return {
      running: this.#ping !== undefined && this.#threadError === null,
      strategy: 'worker',
      ...identityFields(o, this.#startedAt),
      beats: Number(Atomics.load(i64, S.BEATS)),
      lastBeatAt: lastBeatMs > 0 ? new Date(lastBeatMs) : null,
      withheld: Number(Atomics.load(i64, S.WITHHELD)),
      stalled: Atomics.load(this.#i32, S.STALLED) === 1,
      loopSilentMs: Number(process.hrtime.bigint() - Atomics.load(i64, S.ANSWER_NS)) / 1e6,
      errors: Number(Atomics.load(i64, S.ERRORS)),
      lastError: fault
        ? { code: fault.code, message: fault.message, at: new Date(Number(Atomics.load(i64, S.ERROR_MS))) }
        : this.#threadError,
      healthCheck: this.#health ? this.#health.status(Number(Atomics.load(i64, S.VETOED))) : null,
      stall: parseDiagnosis(this.#readDiagnosis().stall),
      lastStall: parseDiagnosis(this.#diagnosis.lastStall),
      exitOnStall: o.exitOnStall > 0 ? o.exitOnStall : false,
      systemd: systemdOff(this.#systemdNote, this.#startedAt),
      listen: this.#endpoint?.address ?? null,
    };
  }

  /** The "worker" strategy cannot talk to systemd: status().systemd says so. */
  ready(): void {}

  metrics(): string {
    return workerMetrics(this.#state, this.#options);
  }

  /** The latest diagnosis the heartbeat thread sent; earlier ones are superseded. */
  #readDiagnosis(): S.ToOwner {
    if (!this.#portOpen) return this.#diagnosis;
    for (let m = receiveMessageOnPort(this.#port); m !== undefined; m = receiveMessageOnPort(this.#port)) {
      this.#diagnosis = m.message as S.ToOwner;
    }
    return this.#diagnosis;
  }

  #send(message: S.ToThread): void {
    if (this.#ping !== undefined) this.#port.postMessage(message);
  }

  track<T>(label: string, fn: () => T): T {
    return runTracked(
      (text) => {
        const id = this.#nextTrackId++;
        Atomics.add(this.#i64, S.ACTIVE_JOBS, 1n);
        this.#send({ kind: 'track', id, label: text, sinceMs: Date.now() });
        return id;
      },
      (id) => {
        Atomics.sub(this.#i64, S.ACTIVE_JOBS, 1n);
        this.#send({ kind: 'untrack', id });
      },
      label,
      fn,
    );
  }

  expectStall(seconds: number, reason?: string): void {
    const checked = checkExpectStall(seconds, reason);
    const untilNs = process.hrtime.bigint() + BigInt(Math.round(checked.seconds * 1e9));
    this.#send({ kind: 'expect', untilNs, ...checked });
  }

  /**
   * Idempotent. Returns once the heartbeat thread will do no further file
   * operation: a beat in progress is waited out (up to STOP_WAIT_MS), then
   * the thread is told to stop. It waits for the next start() on this thread
   * for up to POOL_IDLE_MS, then ends on its own (one stuck in a file
   * operation is terminated at once); it never keeps the process alive.
   */
  stop(): void {
    this.#stop(this.#options.removeOnStop);
  }

  #stop(remove: boolean): void {
    if (this.#ping === undefined) return;
    clearInterval(this.#ping);
    this.#ping = undefined;
    this.#health?.stop();
    atExit.delete(this.#atExit);
    untrackPulse(this);

    const i32 = this.#i32;
    const giveUpAt = performance.now() + STOP_WAIT_MS;
    let hung = false;
    for (;;) {
      const seen = Atomics.compareExchange(i32, S.RUN, S.RunState.idle, S.RunState.stopped);
      if (seen !== S.RunState.busy) break;
      const left = giveUpAt - performance.now();
      if (left <= 0) {
        // A file operation hangs: the thread's next compare-exchange fails,
        // and terminate() below stops it at its next call.
        Atomics.store(i32, S.RUN, S.RunState.stopped);
        hung = true;
        break;
      }
      Atomics.wait(i32, S.RUN, S.RunState.busy, left);
    }

    // The thread will not touch the file again: the record first, then wake
    // and end the thread, so its teardown does not compete with this write.
    // Something other than a regular file planted at the path is left as found.
    const wall = Date.now();
    const inspected = pulseFile.inspectTarget(this.file);
    if (inspected.err === 0) {
      if (remove) {
        if (!inspected.missing) pulseFile.remove(this.file);
      } else {
        // The mtime stays at the last beat (or the file's own, when another
        // process beat it since): a stopped process is not fresh.
        const lastBeat = Number(Atomics.load(this.#i64, S.LAST_BEAT_MS));
        const silentMs = Number((process.hrtime.bigint() - Atomics.load(this.#i64, S.ANSWER_NS)) / 1_000_000n);
        const content = record('stopped', `stopped at ${iso(wall)}`, wall, lastBeat, silentMs, this.#staticFields);
        pulseFile.writeRecord(this.file, this.#tmp, content, pulseFile.keptMtimeMs(this.file, lastBeat));
      }
    }
    this.#readDiagnosis();
    this.#portOpen = false;
    this.#port.close();
    Atomics.notify(i32, S.OWNER); // the owner's waiters resolve, and are freed
    this.#slot.release();
    this.#slot.wake();
    // A thread stuck in a file operation is ended; any other serves the next pulse.
    if (hung) this.#thread.worker.terminate().then(undefined, () => undefined);
    else this.#thread.release();
    this.#endpoint?.close();
  }
}
