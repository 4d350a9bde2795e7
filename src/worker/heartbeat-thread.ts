// The heartbeat thread of the worker strategy: the JavaScript twin of
// Heartbeat::Run and Heartbeat::Tick in native/heartbeat.cc. It runs in its own
// worker_threads Worker, so its beats are on time while the owner's event loop
// is busy, and it never returns to its own event loop until it stops.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Phase, Slot } from './claims';
import * as D from '../diagnosis/diagnosis';
import { inspectTarget, keptMtimeMs, touch, writeRecord, type FileResult } from './pulse-file';
import { iso, jsonEscape, record, seconds, type RecordState } from '../contract/record';
import * as S from './worker-state';
import { exitProcess } from './exit-process';
import { EXIT_ON_STALL_STATUS } from '../contract/options';
import { exactWallMs } from './clock';

// The pulse this thread serves now (see begin() at the end).
const boot = workerData as S.ThreadBoot;
let config = boot.first;
let { i64, i32 } = S.views(config.state);
let slot = new Slot(config.claims, config.slot, config.gen);
const { idle, busy, stopped } = S.RunState;

const now = () => process.hrtime.bigint();
const { ENOENT } = os.constants.errno;

// Wall ms since which the loop has been silent; this thread only.
let stalledSinceMs = 0;
// What the file's record currently says; this thread only. A record that
// withheld beats is replaced by a "running" one at the next beat.
let recordSays: 'running' | 'stalled' | 'unhealthy' = 'running';
// Set when the write of the record that says recordSays failed (ENOSPC, EIO):
// it is written again at each deadline until it is on disk.
let recordStale = false;
// Time the whole process spent frozen since the loop's answer at
// freezeAnswerNs: not counted as the loop's silence while that is still its
// last answer (native/heartbeat.cc keeps the same).
let freezeAnswerNs = -1n;
let freezeCreditNs = 0n;
// The health check's veto, as last received from the owner; null = none.
let veto: S.Veto | null = null;

// The stall diagnosis (native/heartbeat.cc keeps the same state); this thread only.
const REDIAGNOSE_NS = 5_000_000_000n;
const syscalls = D.syscallTable();
const syscallNames = syscalls.names.split(' ');
const fdFirst = new Set(syscalls.fdFirst.split(' '));
const active = new Map<number, D.ActiveLabel>(); // track() labels by id: oldest first
let expect: { untilNs: bigint; seconds: number; reason: string } | null = null;
let cpuSample = { ns: config.startNs, cpuMs: D.threadCpuMs(config.ownerTid) }; // the last deadline before a stall
let stallCpu = cpuSample;
let stallStartNs = 0n; // the loop's last answer before the stall
let diagnosedNs = 0n;
let diagFields = ''; // the JSON members every record of the current stall carries
let diagThread: D.ThreadView | null = null;
let diagActive: D.ActiveLabel[] = [];
let diagWaiting: D.WaitingFor | null = null;
let lastStallJson = ''; // carried by every record after a stall
let recordSaysExpecting = false;

function stopRequested(): boolean {
  return Atomics.load(i32, S.RUN) === stopped || !slot.held();
}

function makeRecord(state: RecordState, message: string, wallMs: number, lastBeatMs: number, extraFields = ''): string {
  const silentMs = Number((now() - Atomics.load(i64, S.ANSWER_NS)) / 1_000_000n);
  const fields = [extraFields, lastStallJson && `"lastStall":${lastStallJson}`].filter(Boolean).join(',');
  return record(state, message, wallMs, lastBeatMs, silentMs, config.staticFields, stalledSinceMs, fields);
}

function report(result: FileResult, wallMs: number): void {
  if (result.err === 0) {
    Atomics.store(i32, S.ERRNO, 0);
    return;
  }
  Atomics.add(i64, S.ERRORS, 1n);
  Atomics.store(i32, S.ERROR_OP, result.op);
  Atomics.store(i64, S.ERROR_MS, BigInt(wallMs));
  Atomics.store(i32, S.ERRNO, result.err);
}

/** Reads what the owner sent: the latest veto wins; labels come and go; the latest expectStall() wins. */
function drainOwner(): void {
  for (let m = receiveMessageOnPort(config.port); m !== undefined; m = receiveMessageOnPort(config.port)) {
    const sent = m.message as S.ToThread;
    if (sent.kind === 'veto') veto = sent.message ? sent : null;
    else if (sent.kind === 'track') active.set(sent.id, { label: sent.label, since: iso(sent.sinceMs) });
    else if (sent.kind === 'untrack') active.delete(sent.id);
    else expect = sent;
  }
}

function publish(stall: string): void {
  config.port.postMessage({ kind: 'diagnosis', stall, lastStall: lastStallJson } satisfies S.ToOwner);
}

/** Whether fd 2's open file is in non-blocking mode (/proc/self/fdinfo/2 flags, O_NONBLOCK). */
function stderrNonBlocking(): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync('/proc/self/fdinfo/2', 'latin1'));
  return flags !== null && (parseInt(flags[1], 8) & fs.constants.O_NONBLOCK) !== 0;
}

/**
 * Never blocks this thread: a pipe is written through a non-blocking
 * descriptor of its own (fd 2 keeps its flags), a socket only when it is in
 * non-blocking mode already (Node sets it once process.stderr is used; the
 * owner uses it at start), a terminal or file directly. A full pipe or socket
 * drops the text.
 */
function log(text: string): void {
  try {
    const st = fs.fstatSync(2);
    if (st.isFIFO()) {
      const fd = fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      try {
        fs.writeSync(fd, text);
      } finally {
        fs.closeSync(fd);
      }
    } else if (!st.isSocket() || stderrNonBlocking()) {
      fs.writeSync(2, text);
    }
  } catch {
    // dropped: a full pipe or socket, or no stderr
  }
}

function activeList(): { json: D.ActiveLabel[]; line: string } {
  const all = [...active.values()];
  const json = all.slice(0, D.MAX_ACTIVE);
  return { json, line: D.activeLine(json, all.length - json.length) };
}

/** The twin of Heartbeat::Diagnose. */
function diagnose(nowNs: bigint, silentMs: number, first: boolean): void {
  if (first) stallCpu = cpuSample;
  const view = D.readThreadView(config.ownerTid, syscallNames, fdFirst);
  const cpuMs = D.threadCpuMs(config.ownerTid);
  const wallMs = Number(nowNs - stallCpu.ns) / 1e6;
  if (cpuMs >= 0 && stallCpu.cpuMs >= 0 && wallMs > 0) {
    view.cpuPercent = Math.round(Math.min(100, (100 * (cpuMs - stallCpu.cpuMs)) / wallMs) * 10) / 10;
  }
  diagnosedNs = nowNs;
  diagThread = view;
  const { json, line } = activeList();
  diagActive = json;
  const asleep = view.state === 'sleeping' || view.state === 'disk-sleep';
  const waiting = asleep ? D.waitingFor(view.fd, view.syscall) : null;
  diagWaiting = waiting?.json ?? null;
  diagFields =
    `"stack":null,"stackAt":null,"stackUnavailable":"${jsonEscape(D.WORKER_NO_STACK)}",` +
    `"thread":${JSON.stringify(view)},"active":${JSON.stringify(json)},` +
    `"nativeStack":null,"waitingFor":${JSON.stringify(diagWaiting)},` +
    `"nativeStackUnavailable":"${jsonEscape(D.WORKER_NO_NATIVE_STACK)}"`;
  publish(`{"since":"${iso(stalledSinceMs)}",${diagFields}}`);
  if (!first || config.logStalls === 0) return;
  if (config.logStalls === 2) {
    log(
      `{"msg":"celery-pulse-native: event loop stalled","pid":${process.pid},"file":"${jsonEscape(config.file)}",` +
        `"stalledSince":"${iso(stalledSinceMs)}","loopSilentMs":${Math.trunc(silentMs)},${diagFields}}\n`,
    );
  } else {
    log(
      `celery-pulse-native: event loop stalled for ${seconds(silentMs)} (pid ${process.pid}, ${config.file}); beats withheld\n` +
        `    (no JavaScript stack: ${D.WORKER_NO_STACK})\n` +
        (waiting ? `    waiting for ${waiting.line}\n` : '') +
        `    thread ${D.threadLine(view)}; active: ${line}\n`,
    );
  }
}

/** The twin of Heartbeat::EndStall. */
function endStall(): void {
  const durationMs = Number((Atomics.load(i64, S.ANSWER_NS) - stallStartNs) / 1_000_000n);
  lastStallJson = JSON.stringify({ since: iso(stalledSinceMs), durationMs, stack: null, thread: diagThread, active: diagActive, nativeStack: null, waitingFor: diagWaiting });
  diagFields = '';
  Atomics.add(i32, S.STALL_GEN, 1);
  Atomics.add(i64, S.STALL_NS_ENDED, Atomics.load(i64, S.ANSWER_NS) - stallStartNs);
  Atomics.store(i64, S.STALL_BEGAN_NS, 0n);
  Atomics.add(i32, S.STALL_GEN, 1);
  Atomics.store(i32, S.STALLED, 0);
  publish('');
  if (config.logStalls === 2) {
    log(`{"msg":"celery-pulse-native: event loop answering again","pid":${process.pid},"file":"${jsonEscape(config.file)}","durationMs":${durationMs}}\n`);
  } else if (config.logStalls === 1) {
    log(`celery-pulse-native: event loop answering again after ${seconds(durationMs)}; beats resumed\n`);
  }
}

/**
 * Writes a record that withholds the beat, its mtime the last beat or the
 * file's own when newer. `inspected` is the look taken at this deadline: a
 * fault there is reported and nothing is written.
 */
function writeWithheld(state: 'stalled' | 'unhealthy', message: string, extraFields: string, wall: number, inspected: FileResult): void {
  Atomics.add(i64, S.WITHHELD, 1n);
  let result = inspected;
  if (result.err === 0) {
    const lastBeat = Number(Atomics.load(i64, S.LAST_BEAT_MS));
    result = writeRecord(config.file, config.tmp, makeRecord(state, message, wall, lastBeat, extraFields), keptMtimeMs(config.file, lastBeat));
  }
  // What the record should say from now on; written again at each deadline
  // while it is not on disk.
  recordSays = state;
  recordStale = result.err !== 0;
  report(result, wall);
}

/**
 * The twin of Heartbeat::EndProcess: the "exited" record, the log block, then
 * the whole process ends at once with EXIT_ON_STALL_STATUS. process.exit()
 * here would end this thread only; WASI's proc_exit calls the C library's
 * exit() with the given status, from this thread, whatever the owner does.
 */
function endProcess(loopSilentMs: number, wall: number, stalled: string): void {
  const status = EXIT_ON_STALL_STATUS;
  const limit = seconds(Number(config.exitOnStallNs) / 1e6);
  const message = `${stalled.replace(/; beats withheld$/, '')}; exitOnStall (${limit}) ended the process with status ${status}`;
  if (inspectTarget(config.file).err === 0) {
    const lastBeat = Number(Atomics.load(i64, S.LAST_BEAT_MS));
    writeRecord(config.file, config.tmp, makeRecord('exited', message, wall, lastBeat, diagFields), keptMtimeMs(config.file, lastBeat));
  }
  if (config.logStalls === 2) {
    log(
      `{"msg":"celery-pulse-native: event loop stalled, ending the process","pid":${process.pid},"file":"${jsonEscape(config.file)}",` +
        `"exitStatus":${status},"stalledSince":"${iso(stalledSinceMs)}","loopSilentMs":${Math.trunc(loopSilentMs)},${diagFields}}\n`,
    );
  } else if (config.logStalls === 1) {
    log(
      `celery-pulse-native: event loop stalled for ${seconds(loopSilentMs)} (pid ${process.pid}, ${config.file}); ` +
        `exitOnStall (${limit}): ending the process with status ${status}\n` +
        `    (no JavaScript stack: ${D.WORKER_NO_STACK})\n` +
        `    thread ${diagThread ? D.threadLine(diagThread) : 'state unknown'}\n`,
    );
  }
  exitProcess(status);
}

let ownerSpan = S.ownerSpanNs(config.ownerWaiters, config.intervalNs);

/**
 * False once the owner is gone: terminated, its runtime dropped its waiters
 * on OWNER, though it answered recently enough that some must be left.
 */
function ownerLives(silentNs: bigint): boolean {
  if (config.ownerWaiters === 0) return true;
  const woken = Atomics.notify(i32, S.OWNER, 1);
  if (woken > 0) {
    Atomics.add(i32, S.OWNER_WOKEN, woken);
    return true;
  }
  return silentNs > ownerSpan;
}

/** One deadline; false when the owner is gone and the thread must end. */
function tick(nowNs: bigint): boolean {
  const beatAt = exactWallMs(); // the mtime a beat sets
  const wall = Math.floor(beatAt); // the record's times and the counters: ms
  drainOwner();
  const answered = Atomics.load(i64, S.ANSWER_NS);
  // A terminated owner: no beat, and the record keeps its last state, as
  // when the runtime ends this thread with its owner.
  if (!ownerLives(nowNs - answered)) return false;
  // An expected stall (expectStall) counts as an answer until it ends.
  const expectUntil = expect?.untilNs ?? 0n;
  let silentNs = nowNs - (expectUntil > answered ? expectUntil : answered);
  // A freeze since the loop's last answer is not its silence (a stall seen
  // already is judged on real answers only).
  if (answered === freezeAnswerNs && Atomics.load(i32, S.STALLED) === 0) silentNs -= freezeCreditNs;
  const answering = config.maxStallNs < 0n || silentNs <= config.maxStallNs;

  // Look before every write: a directory, FIFO, socket, device or symlink
  // that appeared at the path after start is a fault, left exactly as found
  // (its times are not set and no record is renamed over it). Nothing is
  // followed in between either: the writes and the touch refuse links too.
  const inspected = inspectTarget(config.file);

  if (!answering) {
    // A silent loop outranks a failing health check: the check cannot run
    // while the loop is stuck, so its verdict would be stale.
    const first = Atomics.load(i32, S.STALLED) === 0;
    const loopSilentMs = Number(nowNs - answered) / 1e6;
    if (first) {
      stalledSinceMs = wall - loopSilentMs;
      stallStartNs = answered;
      Atomics.add(i64, S.STALLS, 1n);
      Atomics.add(i32, S.STALL_GEN, 1);
      Atomics.store(i64, S.STALL_BEGAN_NS, answered);
      Atomics.add(i32, S.STALL_GEN, 1);
      Atomics.store(i32, S.STALLED, 1);
    }
    // The stuck thread is looked at before the record is written.
    const refresh = config.intervalNs > REDIAGNOSE_NS ? config.intervalNs : REDIAGNOSE_NS;
    if (first || nowNs - diagnosedNs >= refresh) diagnose(nowNs, loopSilentMs, first);
    // Say why, keeping the mtime at the last good beat: nothing fresh.
    const message = `stalled since ${iso(stalledSinceMs)}, loop silent for ${seconds(loopSilentMs)}; beats withheld`;
    writeWithheld('stalled', message, diagFields, wall, inspected);
    if (config.exitOnStallNs > 0n && silentNs > config.exitOnStallNs) endProcess(loopSilentMs, wall, message);
    return true;
  }
  if (Atomics.load(i32, S.STALLED) === 1) endStall();
  // The CPU time the loop's thread has used by the first deadline after its
  // last answer: where the next stall's share starts counting.
  if (answered >= cpuSample.ns) cpuSample = { ns: nowNs, cpuMs: D.threadCpuMs(config.ownerTid) };

  // The loop answers; the health check (if any) may still veto the beat.
  if (veto !== null) {
    Atomics.add(i64, S.VETOED, 1n);
    writeWithheld('unhealthy', veto.message, veto.fields, wall, inspected);
    return true;
  }

  // Inside an expectStall() window the record says so, once.
  const expecting = expect !== null && expectUntil > nowNs;
  let expectMessage = '';
  let expectFields = '';
  if (expect !== null && expecting && (!recordSaysExpecting || recordStale)) {
    const untilMs = wall + Number(expectUntil - nowNs) / 1e6;
    expectMessage =
      `expecting a stall of up to ${seconds(expect.seconds * 1000)}${expect.reason ? ` (${expect.reason})` : ''} until ${iso(untilMs)}`;
    expectFields = `"expectedStall":${JSON.stringify({ seconds: expect.seconds, reason: expect.reason || null, until: iso(untilMs) })}`;
  }

  let result: FileResult = inspected;
  // A failed write of a record that has news: it is reported (and kept in
  // lastError) even when the touch after it beats.
  let writeFailure: FileResult | null = null;
  if (result.err === 0) {
    const { missing } = inspected;
    let beaten = false;
    const news = recordStale || recordSays !== 'running' || (recordSaysExpecting && !expecting);
    if (missing || expectMessage || news) {
      // Deleted: re-create it (never its directory). Or the record has news:
      // beats resume, an expected stall begins or ends, or the last record
      // never reached the disk. Either write is also this beat.
      const message = missing
        ? 're-created after deletion'
        : expectMessage
          ? expectMessage
          : recordSays === 'stalled'
            ? `event loop answering again since ${iso(wall)} after a stall that began ${iso(stalledSinceMs)}`
            : recordSaysExpecting
              ? 'the expected stall is over'
              : recordSays === 'unhealthy'
                ? `health check passing again since ${iso(wall)}`
                : 'running';
      result = writeRecord(config.file, config.tmp, makeRecord('running', message, wall, wall, expectFields), beatAt);
      beaten = result.err === 0;
      recordStale = !beaten;
      if (beaten) {
        recordSays = 'running';
        recordSaysExpecting = expectMessage !== '';
      } else {
        writeFailure = result;
      }
    }
    if (!beaten && !missing) {
      result = touch(config.file, beatAt);
      if (result.err === ENOENT) {
        // Deleted between the look and the touch.
        result = writeRecord(config.file, config.tmp, makeRecord('running', 're-created after deletion', wall, wall), beatAt);
      }
    }
  }
  report(writeFailure ?? result, wall);
  if (result.err === 0) {
    Atomics.add(i64, S.BEATS, 1n);
    Atomics.store(i64, S.LAST_BEAT_MS, BigInt(wall));
  }
  return true;
}

// Waking later than this after a deadline means this thread could not run:
// the process was frozen (or starved), and the loop is given a fresh chance
// (the twin of Heartbeat::GiveLoopAChance): its ping period plus a slack.
const LATE_NS = 50_000_000n;
const CHANCE_SLACK_NS = 250_000_000n;
const CHANCE_POLL_MS = 5;

/** False when stop was asked for meanwhile. */
function giveLoopAChance(wokeNs: bigint, lateNs: bigint): boolean {
  if (config.maxStallNs < 0n || Atomics.load(i32, S.STALLED) === 1) return true;
  let ping = config.maxStallNs / 4n;
  if (ping > 1_000_000_000n) ping = 1_000_000_000n;
  const until = wokeNs + ping + CHANCE_SLACK_NS;
  // A frozen loop's overdue ping timer fires as soon as the process thaws.
  for (;;) {
    const sequence = slot.wakeSequence();
    if (stopRequested()) return false;
    if (Atomics.load(i64, S.ANSWER_NS) >= wokeNs) return true; // it answered: nothing to credit
    const t = now();
    if (t >= until) break;
    slot.setPhase(Phase.parked);
    slot.park(sequence, Math.min(CHANCE_POLL_MS, Number(until - t) / 1e6));
    slot.setPhase(Phase.working);
  }
  // Still silent: the late time is the freeze's, not the loop's.
  const answered = Atomics.load(i64, S.ANSWER_NS);
  if (answered !== freezeAnswerNs) {
    freezeAnswerNs = answered;
    freezeCreditNs = 0n;
  }
  freezeCreditNs += lateNs;
  return true;
}

function run(): void {
  const interval = config.intervalNs;
  let k = 1n; // deadline k is start + k * interval: beats never drift
  for (;;) {
    const deadline = config.startNs + k * interval;
    let t: bigint;
    for (;;) {
      const sequence = slot.wakeSequence(); // read before the checks: no lost wake-up
      if (stopRequested()) return;
      t = now();
      if (t >= deadline) break;
      slot.setPhase(Phase.parked);
      slot.park(sequence, Number(deadline - t) / 1e6);
      slot.setPhase(Phase.working);
    }
    if (t - deadline > LATE_NS) {
      if (!giveLoopAChance(t, t - deadline)) return;
      t = now();
    }
    if (Atomics.compareExchange(i32, S.RUN, idle, busy) !== idle) return;
    const owned = tick(t);
    const after = Atomics.compareExchange(i32, S.RUN, busy, idle);
    Atomics.notify(i32, S.RUN); // stop() may be waiting for this beat to end
    if (after !== busy || !owned) return;
    // Deadlines missed while the process was frozen (SIGSTOP) are skipped,
    // not replayed in a burst.
    const next = (t - config.startNs) / interval + 1n;
    k = next > k + 1n ? next : k + 1n;
  }
}

/** Sets this thread up for the pulse `next`: its config, and every state above as at start. */
function begin(next: S.HeartbeatConfig): void {
  config = next;
  ({ i64, i32 } = S.views(config.state));
  slot = new Slot(config.claims, config.slot, config.gen);
  ownerSpan = S.ownerSpanNs(config.ownerWaiters, config.intervalNs);
  stalledSinceMs = 0;
  recordSays = 'running';
  recordStale = false;
  freezeAnswerNs = -1n;
  freezeCreditNs = 0n;
  veto = null;
  active.clear();
  expect = null;
  cpuSample = { ns: config.startNs, cpuMs: D.threadCpuMs(config.ownerTid) };
  stallCpu = cpuSample;
  stallStartNs = 0n;
  diagnosedNs = 0n;
  diagFields = '';
  diagThread = null;
  diagActive = [];
  lastStallJson = '';
  recordSaysExpecting = false;
}

// The thread serves one pulse after another: a stopped pulse's thread goes
// back to its event loop (which frees what the pulse's run left, such as its
// closed port) and waits there up to POOL_IDLE_MS for the next start() on its
// owner's thread, then ends: a Worker started per pulse would cost an isolate
// each time, and part of that memory never comes back. The handshake is in
// worker-state.ts.
const pool = new Int32Array(boot.pool);
let idleTimer: NodeJS.Timeout | undefined;

function serve(next: S.HeartbeatConfig): void {
  begin(next);
  run();
  slot.setPhase(Phase.exited);
  config.port.close();
  idleTimer = setTimeout(() => {
    // Closed, unless an owner took this thread meanwhile: then its pulse is on the way.
    if (Atomics.compareExchange(pool, S.POOL_STATE, S.PoolState.open, S.PoolState.closed) !== S.PoolState.taken) {
      boot.poolPort.close(); // nothing is left on the loop: the thread ends
    }
  }, S.POOL_IDLE_MS);
}

boot.poolPort.on('message', (next: S.HeartbeatConfig) => {
  clearTimeout(idleTimer);
  serve(next);
});
serve(boot.first);
