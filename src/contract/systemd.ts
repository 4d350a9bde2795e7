// Which pulse talks to systemd, and what status() says about it. The notify
// protocol itself is native (native/sd_notify.cc): Node has no datagram Unix
// sockets, so the "worker" strategy cannot send to NOTIFY_SOCKET.
import { isMainThread } from 'node:worker_threads';
import type { ResolvedOptions } from './options';
import type { PulseLastError } from './status';
import { errnoName } from './status';

export interface SystemdStatus {
  /** This pulse sends to systemd: the main thread's first pulse, with NOTIFY_SOCKET set. */
  enabled: boolean;
  /** NOTIFY_SOCKET as given; null when this pulse does not talk to systemd. */
  socket: string | null;
  /** WATCHDOG_USEC when the watchdog is this process's to feed, else null. */
  watchdogUsec: number | null;
  /** Datagrams sent. */
  sent: number;
  /** The last send's failure (cleared by the next send that goes through), or why nothing is sent. */
  lastError: PulseLastError | null;
}

export interface SystemdPlan {
  socket: string;
  /** 0: no watchdog pings. */
  watchdogUsec: number;
}

type Env = Record<string, string | undefined>;

// The pulse of this thread that talks to systemd: one per process, since only
// the main thread may.
let owner: object | undefined;

/** Claims systemd for `pulse` when it is the one to talk to it; null when not. */
export function claimSystemd(options: ResolvedOptions, pulse: object, env: Env = process.env): SystemdPlan | null {
  const socket = env.NOTIFY_SOCKET;
  if (!options.systemd || !isMainThread || owner !== undefined || !socket) return null;
  owner = pulse;
  const pid = env.WATCHDOG_PID;
  const usec = /^\d{1,15}$/.test(env.WATCHDOG_USEC ?? '') ? Number(env.WATCHDOG_USEC) : 0;
  const ours = !pid || pid.trim() === String(process.pid);
  return { socket, watchdogUsec: ours ? usec : 0 };
}

export function releaseSystemd(pulse: object): void {
  if (owner === pulse) owner = undefined;
}

/** status().systemd for a pulse that does not talk to systemd. */
export function systemdOff(reason: string | null, at = new Date()): SystemdStatus {
  return {
    enabled: false,
    socket: null,
    watchdogUsec: null,
    sent: 0,
    lastError: reason ? { code: 'ENOTSUP', message: reason, at } : null,
  };
}

/** status().systemd from the addon's counters. */
export function systemdStatus(plan: SystemdPlan, sent: number, errno: number, errorMs: number): SystemdStatus {
  return {
    enabled: true,
    socket: plan.socket,
    watchdogUsec: plan.watchdogUsec > 0 ? plan.watchdogUsec : null,
    sent,
    lastError:
      errno !== 0
        ? { code: errnoName(errno), message: `cannot send to NOTIFY_SOCKET ${JSON.stringify(plan.socket)} (${errnoName(errno)})`, at: new Date(errorMs) }
        : null,
  };
}
