import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import type { ResolvedOptions } from './options';
import type { HealthCheckStatus } from './health';
import type { Strategy } from './options';
import type { LastStall, StallDiagnosis } from '../diagnosis/stall-text';
import type { FileOpName } from '../native/loader';
import type { SystemdStatus } from './systemd';

export interface PulseLastError {
  /**
   * errno name (e.g. "EACCES"), or "ENOTREG" when something other than a
   * regular file is in the way; for a worker-strategy heartbeat thread that
   * ended early, Node's error code (e.g. "ERR_WORKER_OUT_OF_MEMORY").
   */
  code: string;
  message: string;
  at: Date;
}

export interface PulseStatus {
  running: boolean;
  strategy: Exclude<Strategy, 'auto'>;
  file: string;
  interval: number;
  maxStall: number;
  pid: number;
  threadId: number;
  startedAt: Date;
  /** Successful touches, the synchronous first beat included. */
  beats: number;
  lastBeatAt: Date | null;
  /**
   * Deadlines skipped because the event loop was silent for longer than
   * maxStall, or because the health check was failing.
   */
  withheld: number;
  stalled: boolean;
  /** Time since the loop last answered, as the heartbeat thread sees it. */
  loopSilentMs: number;
  /** Failed file operations since start. */
  errors: number;
  lastError: PulseLastError | null;
  /** The custom health check's state; null without a healthCheck option. */
  healthCheck: HealthCheckStatus | null;
  /** While stalled: where the loop is stuck (the stall record's diagnosis); else null. */
  stall: StallDiagnosis | null;
  /** The last stall that ended, with its duration; null before any. */
  lastStall: LastStall | null;
  /** Seconds of silence that end the process (exitOnStall), or false. */
  exitOnStall: number | false;
  /** What this pulse tells systemd (NOTIFY_SOCKET). */
  systemd: SystemdStatus;
  /** Where /livez, /metrics and /status are served ("127.0.0.1:9464"); null without `listen`. */
  listen: string | null;
}

/** A diagnosis handed over as JSON text by a heartbeat thread; '' is none. */
export function parseDiagnosis<T extends StallDiagnosis | LastStall>(json: string): T | null {
  return json ? (JSON.parse(json) as T) : null;
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, value]) => [value, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** A sentence for a failed file operation; `code` is the errno name (or ENOTREG). */
export function describeFileFault(file: string, errno: number, op: FileOpName): { code: string; message: string } {
  if (op === 'not-regular') {
    return { code: 'ENOTREG', message: `"${file}" is not a regular file (ENOTREG)` };
  }
  const code = errnoName(errno);
  const what: Record<string, string> = {
    ELOOP: 'is a symbolic link, and links are never followed',
    EISDIR: 'is a directory',
    EACCES: 'is not writable (permission denied)',
    EPERM: 'is not writable (operation not permitted)',
    EROFS: 'is on a read-only file system',
    ENOENT: 'has a missing parent directory',
    ENOTDIR: 'has a parent that is not a directory',
    ENOSPC: 'is on a full file system',
  };
  const reason = what[code] ?? 'cannot be written';
  return { code, message: `"${file}" ${reason} (${code} during ${op})` };
}

/** The status fields that are the same for both strategies: settings and identity. */
export function identityFields(o: Pick<ResolvedOptions, 'file' | 'interval' | 'maxStall'>, startedAt: Date) {
  return { file: o.file, interval: o.interval, maxStall: o.maxStall, pid: process.pid, threadId, startedAt };
}
