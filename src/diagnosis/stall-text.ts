// The stall diagnosis's shapes and how they read as text: loaded by the CLI,
// so it imports nothing.

/** A JavaScript frame, innermost first, as V8 reports it (1-based line and column). */
export interface StackFrame {
  function: string;
  file: string;
  line: number;
  column: number;
  /**
   * True for a frame inside celery-pulse-native's own code (its track()
   * wrapper, say): kept in the record, left out of what people read.
   */
  internal?: true;
}

/** The stuck thread as the kernel sees it (/proc/self/task/<tid>/). */
export interface ThreadView {
  state: string | null;
  /** CPU time it used during the stall over the stall's wall time, x 100. */
  cpuPercent: number | null;
  syscall: string | null;
  wchan: string | null;
  fd: number | null;
  fdTarget: string | null;
}

/** A machine frame of a thread stuck outside JavaScript, innermost first. */
export interface NativeFrame {
  /** Demangled; null where no symbol covers the address. */
  symbol: string | null;
  /** The file's base name, or "[anonymous]" (JIT code), "[vdso]". */
  module: string;
}

/** What a thread asleep in a system call waits for, found through its descriptor. */
export type WaitingFor =
  | { kind: 'child'; pid: number; command: string | null; state: string | null; runningMs: number | null }
  | { kind: 'socket'; protocol: string | null; local: string | null; peer: string | null; state?: string | null }
  | { kind: 'pipe'; inode: number }
  | { kind: 'fifo'; path: string }
  | { kind: 'file'; path: string; fsType: string | null };

export interface ActiveLabel {
  label: string;
  since: string;
}

/** What a stall record (and status().stall) says about where the loop is stuck. */
export interface StallDiagnosis {
  since: string;
  stack: StackFrame[] | null;
  stackAt: string | null;
  /** Why there is no stack; absent when there is one. */
  stackUnavailable?: string;
  thread: ThreadView;
  active: ActiveLabel[];
  /** The machine stack when the thread is outside JavaScript (native strategy); null otherwise. */
  nativeStack?: NativeFrame[] | null;
  /** Why there is no nativeStack although the thread is outside JavaScript. */
  nativeStackUnavailable?: string;
  waitingFor?: WaitingFor | null;
}

/** The last finished stall: kept in status() and in every later record. */
export interface LastStall {
  since: string;
  durationMs: number;
  stack: StackFrame[] | null;
  /** "end" when the stack was taken as the loop came back from the native call. */
  stackTakenAt?: 'end';
  thread: ThreadView;
  active: ActiveLabel[];
  nativeStack?: NativeFrame[] | null;
  waitingFor?: WaitingFor | null;
}

/** A dead process's stall (or failing health check), kept by the next one on the file. */
export interface PreviousRun {
  pid: number | null;
  state: string;
  stalledSince: string | null;
  updatedAt: string | null;
  stack: StackFrame[] | null;
  thread: ThreadView | null;
  active: ActiveLabel[] | null;
}

/** "running, 99.6% CPU" / "sleeping in read on fd 21 (/tmp/fifo), 0.0% CPU": as native/diagnose.cc words it. */
export function threadLine(view: ThreadView): string {
  let out = view.state ?? 'state unknown';
  if (view.syscall) out += ` in ${view.syscall}`;
  if (view.fd !== null) out += ` on fd ${view.fd}${view.fdTarget ? ` (${view.fdTarget})` : ''}`;
  if (view.cpuPercent !== null) out += `, ${view.cpuPercent.toFixed(1)}% CPU`;
  if (!view.syscall && view.wchan) out += `, wchan ${view.wchan}`;
  return out;
}

/** "job a, job b" or "none", as the addon words it. */
export function activeLine(active: readonly ActiveLabel[], more = 0): string {
  const names = active.map((a) => a.label).join(', ');
  return (names || 'none') + (more > 0 ? ` and ${more} more` : '');
}

/** The frames people read: the package's own left out (see StackFrame.internal). */
export function userFrames(stack: readonly StackFrame[]): StackFrame[] {
  return stack.filter((frame) => frame.internal !== true);
}

/** "at fn (file:line:col)", as Node prints a frame. */
export function frameLine(frame: StackFrame): string {
  const where = `${frame.file || '<unknown>'}:${frame.line}:${frame.column}`;
  return `at ${frame.function || '<anonymous>'} (${where})`;
}


/** "sqlite3VdbeExec (better_sqlite3.node)": a native frame as the log block names it. */
export function nativeFrameLine(frame: NativeFrame): string {
  return `${frame.symbol ?? '<unknown>'} (${frame.module})`;
}

/** "child 4242: sleep 15", "FIFO /tmp/f", "socket tcp 10.0.0.2:40000 -> 10.0.0.5:5432": as native/waiting_for.cc words it. */
export function waitingLine(w: WaitingFor): string {
  switch (w.kind) {
    case 'child':
      return `child ${w.pid}: ${w.command ?? ''}`;
    case 'socket':
      return w.protocol === 'unix'
        ? `socket unix ${w.local ?? ''}`.trimEnd()
        : `socket ${w.protocol ?? ''} ${w.local ?? ''}${w.peer ? ` -> ${w.peer}` : ' (listening)'}`;
    case 'pipe':
      return `pipe:[${w.inode}]`;
    case 'fifo':
      return `FIFO ${w.path}`;
    case 'file':
      return `file ${w.path}${w.fsType ? ` (${w.fsType})` : ''}`;
  }
}

/**
 * Where the thread is when no JavaScript frame says it: "in sqlite3VdbeExec
 * (better_sqlite3.node)" or "waiting for child 4242: sleep 15"; '' when neither is known.
 */
export function outsideJsText(d: { nativeStack?: unknown; waitingFor?: unknown }): string {
  if (d.waitingFor !== null && typeof d.waitingFor === 'object') return `waiting for ${waitingLine(d.waitingFor as WaitingFor)}`;
  if (Array.isArray(d.nativeStack) && d.nativeStack.length > 0) return `in ${nativeFrameLine(d.nativeStack[0] as NativeFrame)}`;
  return '';
}
