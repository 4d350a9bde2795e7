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
}

/** The last finished stall: kept in status() and in every later record. */
export interface LastStall {
  since: string;
  durationMs: number;
  stack: StackFrame[] | null;
  thread: ThreadView;
  active: ActiveLabel[];
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

/** "at fn (file:line:col)", as Node prints a frame. */
/** The frames people read: the package's own left out (see StackFrame.internal). */
export function userFrames(stack: readonly StackFrame[]): StackFrame[] {
  return stack.filter((frame) => frame.internal !== true);
}

export function frameLine(frame: StackFrame): string {
  const where = `${frame.file || '<unknown>'}:${frame.line}:${frame.column}`;
  return `at ${frame.function || '<anonymous>'} (${where})`;
}

