// The worker strategy's /metrics text, read from the pulse's shared memory:
// by the owner (pulse.metrics()) or by the endpoint's thread while the owner
// is stuck.
import { buildMetrics, DELAY_BOUNDS, delayBucket } from '../contract/metrics';
import { packageVersion, runtimeName } from '../contract/endpoint';
import * as S from './worker-state';

export interface MetricsSettings {
  file: string;
  interval: number;
  maxStall: number;
}

/** The owner's answer at `nowNs`: how late it came against the ping period, into the histogram. */
export function observeAnswer(i64: BigInt64Array, nowNs: bigint, pingNs: number): void {
  const delayNs = Number(nowNs - Atomics.load(i64, S.ANSWER_NS)) - pingNs;
  const bucket = delayBucket(delayNs);
  if (bucket < DELAY_BOUNDS.length) Atomics.add(i64, S.DELAY_BUCKETS + bucket, 1n);
  Atomics.add(i64, S.DELAY_SUM_NS, BigInt(Math.max(0, Math.round(delayNs))));
  Atomics.add(i64, S.DELAY_COUNT, 1n);
}

export function workerMetrics(state: SharedArrayBuffer, settings: MetricsSettings): string {
  const { i64, i32 } = S.views(state);
  const now = process.hrtime.bigint();
  // The pair as the heartbeat thread last left it; an ongoing stall counts
  // up to now, or up to the loop's answer once it came (as the thread will).
  let ended = 0n;
  let began = 0n;
  for (let tries = 0; tries < 1000; tries++) {
    const gen = Atomics.load(i32, S.STALL_GEN);
    ended = Atomics.load(i64, S.STALL_NS_ENDED);
    began = Atomics.load(i64, S.STALL_BEGAN_NS);
    if ((gen & 1) === 0 && Atomics.load(i32, S.STALL_GEN) === gen) break;
  }
  const answered = Atomics.load(i64, S.ANSWER_NS);
  const stallNs = ended + (began !== 0n ? (answered > began ? answered : now) - began : 0n);
  const buckets = DELAY_BOUNDS.map((_, i) => Number(Atomics.load(i64, S.DELAY_BUCKETS + i)));
  const count = Math.max(Number(Atomics.load(i64, S.DELAY_COUNT)), buckets.reduce((a, b) => a + b, 0));
  return buildMetrics({
    version: packageVersion(),
    strategy: 'worker',
    runtime: runtimeName(),
    file: settings.file,
    interval: settings.interval,
    maxStall: settings.maxStall,
    beats: Number(Atomics.load(i64, S.BEATS)),
    withheld: Number(Atomics.load(i64, S.WITHHELD)),
    errors: Number(Atomics.load(i64, S.ERRORS)),
    stalls: Number(Atomics.load(i64, S.STALLS)),
    stallSeconds: Number(stallNs) / 1e9,
    stalled: Atomics.load(i32, S.STALLED) === 1,
    loopSilentSeconds: Number(now - Atomics.load(i64, S.ANSWER_NS)) / 1e9,
    lastBeatTimestamp: Number(Atomics.load(i64, S.LAST_BEAT_MS)) / 1e3,
    activeJobs: Number(Atomics.load(i64, S.ACTIVE_JOBS)),
    // The worker strategy takes no JavaScript stack.
    frame: null,
    delayBuckets: buckets,
    delayCount: count,
    delaySumSeconds: Number(Atomics.load(i64, S.DELAY_SUM_NS)) / 1e9,
  });
}
