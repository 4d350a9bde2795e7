import { show } from './errors';

/** A custom health check: `true` means healthy; anything else, a throw or a timeout, is a failure. */
export type HealthCheck = () => boolean | Promise<boolean>;

export interface HealthCheckStatus {
  /** The check's function name, or "healthCheck". */
  name: string;
  /** Verdict of the last settled run (true before the first one settles). */
  healthy: boolean;
  /** Why the last run failed ("returned false", "threw Error: ...", "timed out after 5 s"); null while healthy. */
  error: string | null;
  /** Start of the current failing streak; null while healthy. */
  failingSince: Date | null;
  lastRunAt: Date | null;
  runs: number;
  failures: number;
  /** Deadlines whose beat was withheld because the check was failing. */
  withheld: number;
}

/** How a failing check vetoes beats: the heartbeat's veto(message, fields); ('', '') lifts it. */
export type Veto = (message: string, fields: string) => void;

// Long error texts are cut: the record is a probe's input, not a log.
const MAX_ERROR_CHARS = 500;

function describeFailure(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : show(error);
  return `threw ${text}`.slice(0, MAX_ERROR_CHARS);
}

/**
 * Runs a health check on the event loop once per interval, shortly before
 * each heartbeat deadline, and turns its verdict into the heartbeat's veto.
 * Its timers are unref'd: it never keeps the process alive. A run never
 * overlaps the previous one, except that a run which has not settled by its
 * timeout counts as failed and is abandoned (its late answer is ignored).
 */
export class HealthCheckRunner {
  readonly #check: HealthCheck;
  readonly #name: string;
  readonly #timeoutMs: number;
  readonly #intervalMs: number;
  readonly #veto: Veto;
  readonly #t0 = performance.now();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #runCounter = 0;
  #run = 0; // id of the run in flight; 0 when none
  #k = 0; // index of the next heartbeat deadline to run before
  #vetoing = false;
  #state: Omit<HealthCheckStatus, 'withheld'>;

  constructor(check: HealthCheck, timeoutSec: number, intervalSec: number, veto: Veto) {
    this.#check = check;
    this.#name = check.name || 'healthCheck';
    this.#timeoutMs = timeoutSec * 1000;
    this.#intervalMs = intervalSec * 1000;
    this.#veto = veto;
    this.#state = { name: this.#name, healthy: true, error: null, failingSince: null, lastRunAt: null, runs: 0, failures: 0 };
    // The first run is right away, so a check that fails from the start
    // withholds the first deadline.
    this.#schedule(0);
  }

  status(withheld: number): HealthCheckStatus {
    return { ...this.#state, withheld };
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => this.#start(), Math.max(0, delayMs));
    this.#timer.unref();
  }

  // Next run: ahead of the next deadline (start + k·interval) by the time a
  // run may take, at most half an interval, so the verdict is fresh.
  #scheduleNext(): void {
    const lead = Math.min(this.#timeoutMs, this.#intervalMs / 2);
    const now = performance.now() - this.#t0;
    this.#k = Math.max(this.#k + 1, Math.floor((now + lead) / this.#intervalMs) + 1);
    this.#schedule(this.#k * this.#intervalMs - lead - now);
  }

  #start(): void {
    if (this.#stopped) return;
    const run = ++this.#runCounter;
    this.#run = run;
    this.#state.runs++;
    this.#state.lastRunAt = new Date();
    const timeout = setTimeout(() => {
      this.#settle(run, false, `timed out after ${this.#timeoutMs / 1000} s`);
    }, this.#timeoutMs);
    timeout.unref();
    let result: unknown;
    try {
      result = this.#check();
    } catch (error) {
      clearTimeout(timeout);
      this.#settle(run, false, describeFailure(error));
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        clearTimeout(timeout);
        if (value === true) this.#settle(run, true, null);
        else this.#settle(run, false, `returned ${show(value)}`.slice(0, MAX_ERROR_CHARS));
      },
      (error: unknown) => {
        clearTimeout(timeout);
        this.#settle(run, false, describeFailure(error));
      },
    );
  }

  #settle(run: number, healthy: boolean, error: string | null): void {
    if (run !== this.#run || this.#stopped) return; // late answer of an abandoned run
    this.#run = 0;
    const state = this.#state;
    if (healthy) {
      state.healthy = true;
      state.error = null;
      state.failingSince = null;
      if (this.#vetoing) {
        this.#vetoing = false;
        this.#veto('', '');
      }
    } else {
      state.failures++;
      if (state.healthy) state.failingSince = new Date();
      state.healthy = false;
      state.error = error;
      const since = (state.failingSince as Date).toISOString();
      const message = `health check "${this.#name}" failing since ${since}: ${error}; beats withheld`;
      const fields = JSON.stringify({ healthCheck: { name: this.#name, error, failingSince: since, checkedAt: new Date().toISOString() } });
      this.#vetoing = true;
      this.#veto(message, fields.slice(1, -1));
    }
    this.#scheduleNext();
  }
}
