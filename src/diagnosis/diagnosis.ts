// The stall diagnosis's shared parts: its types, the system call table both
// strategies use, the worker strategy's kernel view of the stuck thread (the
// twin of native/diagnose.cc), and the `previous` record kept across restarts.
import * as fs from 'node:fs';
import { PROC_STATES, readProc } from './proc';
import * as path from 'node:path';
import { pulseError, show } from '../contract/errors';
import { userFrames, type ActiveLabel, type PreviousRun, type StackFrame, type ThreadView } from './stall-text';
import { SYSCALL_NAMES } from './syscalls';

export type { ActiveLabel, LastStall, NativeFrame, PreviousRun, StackFrame, StallDiagnosis, ThreadView, WaitingFor } from './stall-text';
export { activeLine, frameLine, threadLine, userFrames } from './stall-text';
export { waitingFor } from './waiting-for';

/**
 * This package's own code (dist/): stack frames there (the track() wrapper,
 * say) are marked `internal` in the record and left out of what people read.
 */
export const OWN_FILES = path.join(__dirname, '..') + path.sep;

/** track() labels listed in a record, at most. */
export const MAX_ACTIVE = 16;
/** A track() label is cut at this many characters. */
export const MAX_LABEL = 200;
/** Top frames kept in lastStall and previous. */
export const TOP_FRAMES = 5;

/** Why a worker-strategy record has no stack. */
export const WORKER_NO_STACK =
  'the "worker" strategy cannot interrupt the stuck thread to read its JavaScript stack (the native strategy can)';

/** Why a worker-strategy record has no nativeStack. */
export const WORKER_NO_NATIVE_STACK =
  'the "worker" strategy cannot signal the stuck thread to read its machine stack (the native strategy can)';

// Calls whose first argument is a descriptor: the diagnosis names what it is.
const FD_FIRST =
  'read write readv writev pread64 pwrite64 preadv pwritev preadv2 pwritev2 recvfrom recvmsg recvmmsg ' +
  'sendto sendmsg sendmmsg accept accept4 connect epoll_wait epoll_pwait epoll_pwait2 fsync fdatasync ' +
  'flock ioctl fcntl ftruncate sendfile splice tee sync_file_range getdents64 lseek io_uring_enter';

/** The table for this CPU: space-separated names by number, and the descriptor-first calls. */
export function syscallTable(): { names: string; fdFirst: string } {
  return { names: SYSCALL_NAMES[process.arch] ?? '', fdFirst: FD_FIRST };
}

export type LogStalls = boolean | 'json';

/** logStalls as the addon takes it: 0 off, 1 text, 2 JSON. */
export function logMode(value: LogStalls): number {
  return value === 'json' ? 2 : value ? 1 : 0;
}

/** A track() label: a string, cut at MAX_LABEL characters (never inside a surrogate pair). */
export function checkLabel(label: unknown): string {
  if (typeof label !== 'string') {
    throw pulseError(TypeError, 'ERR_PULSE_INVALID_ARGUMENT', `track(label, fn): label must be a string, got ${show(label)}`, {
      argument: 'label',
      value: label,
    });
  }
  if (label.length <= MAX_LABEL) return label;
  const cut = label.slice(0, MAX_LABEL);
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** The thread of this process that runs the caller: its tid, from /proc/thread-self. */
export function currentTid(): number {
  try {
    return Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return process.pid;
  }
}

/** Clock ticks per second of /proc's CPU times: 100 on every Linux build in use. */
const CLOCK_TICKS = 100;

/** CPU time (ms) thread `tid` of this process has used, from its stat; -1 when unknown. */
export function threadCpuMs(tid: number): number {
  const stat = readProc(`/proc/self/task/${tid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3, utime 14 and stime 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / CLOCK_TICKS : -1;
}

/** The twin of ReadThreadView: state, system call, wait channel and descriptor; cpuPercent null. */
export function readThreadView(tid: number, names: readonly string[], fdFirst: ReadonlySet<string>): ThreadView {
  const dir = `/proc/self/task/${tid}/`;
  const stat = readProc(`${dir}stat`);
  const close = stat.lastIndexOf(')');
  const view: ThreadView = {
    state: close > 0 ? (PROC_STATES[stat[close + 2]] ?? null) : null,
    cpuPercent: null,
    syscall: null,
    wchan: null,
    fd: null,
    fdTarget: null,
  };
  const call = readProc(`${dir}syscall`).trim().split(' ');
  if (/^\d+$/.test(call[0])) {
    const nr = Number(call[0]);
    const name = names[nr];
    view.syscall = name ? name : `#${nr}`;
    if (name && fdFirst.has(name)) {
      const fd = parseInt(call[1], 16);
      if (fd >= 0 && fd < 1 << 24) view.fd = fd;
    }
  }
  const wchan = readProc(`${dir}wchan`).trim();
  if (wchan && wchan !== '0') view.wchan = wchan;
  if (view.fd !== null) {
    try {
      view.fdTarget = fs.readlinkSync(`/proc/self/fd/${view.fd}`);
    } catch {
      // closed meanwhile
    }
  }
  return view;
}

type Json = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const arr = <T>(v: unknown): T[] | null => (Array.isArray(v) ? (v as T[]) : null);
const obj = <T>(v: unknown): T | null => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as T) : null);

/**
 * The diagnosis of the process that last wrote the file, when it died stalled
 * or unhealthy, or was ended by exitOnStall: start() keeps it as `previous`, one level only. A file that
 * holds no record, or a record of a process that stopped or was healthy, gives
 * null. Never follows a link, never blocks on a FIFO.
 */
export function previousRun(file: string): PreviousRun | null {
  let text: string;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buffer = Buffer.alloc(64 * 1024);
    text = buffer.subarray(0, fs.readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8');
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
  let record: Json | null;
  try {
    record = obj<Json>(JSON.parse(text));
  } catch {
    return null;
  }
  if (record === null || (record.state !== 'stalled' && record.state !== 'unhealthy' && record.state !== 'exited')) return null;
  const stack = arr<StackFrame>(record.stack);
  return {
    pid: typeof record.pid === 'number' ? record.pid : null,
    state: record.state,
    stalledSince: str(record.stalledSince),
    updatedAt: str(record.updatedAt),
    stack: stack ? userFrames(stack).slice(0, TOP_FRAMES) : null,
    thread: obj<ThreadView>(record.thread),
    active: arr<ActiveLabel>(record.active),
  };
}

/** The JSON member every record of a pulse carries when a previous run died stuck; '' when none. */
export function previousField(previous: PreviousRun | null): string {
  return previous ? `"previous":${JSON.stringify(previous)}` : '';
}
