import { pulseError, show } from './contract/errors';
import { parseSeconds, checkFile, checkSeconds, resolveOptions, type PulseOptions, type Source } from './contract/options';
import type { Pulse } from './contract/pulse';
import { startStrategy } from './strategy';

export type { PulseOptions, Strategy } from './contract/options';
export { EXIT_ON_STALL_STATUS } from './contract/options';
export type { SystemdStatus } from './contract/systemd';
export type { Pulse } from './contract/pulse';
export type { PulseStatus, PulseLastError } from './contract/status';
export type { PulseErrorCode, PulseError } from './contract/errors';
export type { HealthCheck, HealthCheckStatus } from './contract/health';
export type { ActiveLabel, LastStall, PreviousRun, StackFrame, StallDiagnosis, ThreadView } from './diagnosis/stall-text';

/**
 * Starts a heartbeat on the healthcheck file. Every option is optional;
 * explicit options beat CELERY_PULSE_* env vars, which beat the defaults.
 * Throws a coded TypeError/RangeError on bad input before touching anything,
 * and a coded Error when the first beat cannot be written.
 */
export function start(options?: PulseOptions): Pulse {
  return startStrategy(resolveOptions(options));
}

/** A Celery-style app: settings live in `app.conf`. */
export interface CeleryLikeApp {
  conf?: Record<string, unknown> | null;
}

const CONF_KEYS = {
  interval: ['pulse_heartbeat_interval', 'CELERY_PULSE_HEARTBEAT_INTERVAL'],
  file: ['pulse_healthcheck_file', 'CELERY_PULSE_HEALTHCHECK_FILE'],
  maxStall: ['pulse_max_stall', 'CELERY_PULSE_MAX_STALL'],
} as const;

function confValue(conf: Record<string, unknown>, keys: readonly string[]): [unknown, Source] | undefined {
  for (const key of keys) {
    if (conf[key] !== undefined && conf[key] !== null) return [conf[key], { kind: 'option', name: `conf.${key}` }];
  }
  return undefined;
}

/**
 * One-line integration for a Celery-style app (e.g. a celery-node worker):
 * reads pulse_heartbeat_interval, pulse_healthcheck_file and pulse_max_stall
 * (or their CELERY_PULSE_* forms) from app.conf, then starts. `overrides` win.
 */
export function initCeleryPulse(app: CeleryLikeApp, overrides: PulseOptions = {}): Pulse {
  if (app === null || typeof app !== 'object' && typeof app !== 'function') {
    throw pulseError(TypeError, 'ERR_PULSE_INVALID_APP', `initCeleryPulse needs an app object with a conf, got ${show(app)}`);
  }
  const conf = app.conf ?? {};
  if (typeof conf !== 'object') {
    throw pulseError(TypeError, 'ERR_PULSE_INVALID_APP', `app.conf must be an object, got ${show(conf)}`);
  }
  const fromConf: PulseOptions = {};
  const seconds = (entry: [unknown, Source], allowInfinity: boolean) =>
    typeof entry[0] === 'string'
      ? parseSeconds(entry[0], entry[1], allowInfinity)
      : checkSeconds(entry[0], entry[1], allowInfinity);
  const interval = confValue(conf, CONF_KEYS.interval);
  if (interval) fromConf.interval = seconds(interval, false);
  const maxStall = confValue(conf, CONF_KEYS.maxStall);
  if (maxStall) fromConf.maxStall = seconds(maxStall, true);
  const file = confValue(conf, CONF_KEYS.file);
  if (file) {
    checkFile(file[0], file[1]);
    // Passed on as written, so start() still sees its placeholders.
    fromConf.file = file[0] as string;
  }
  const pulse = start({ ...fromConf, ...overrides });
  trackCeleryTasks(app, pulse);
  return pulse;
}

/** A celery-node message: protocol 2 carries the task in its headers, protocol 1 in its body. */
interface CeleryMessage {
  headers?: Record<string, unknown>;
  decode?: () => unknown;
}

function taskLabel(message: CeleryMessage): string {
  let name = message.headers?.task;
  let id = message.headers?.id;
  if (typeof name !== 'string' && typeof message.decode === 'function') {
    const body = message.decode() as Record<string, unknown> | null;
    name = body?.task;
    id = body?.id;
  }
  return `task ${String(name)}[${String(id)}]`;
}

/**
 * celery-node builds its message handler in start(): wrapped here, every task
 * runs inside pulse.track('task <name>[<id>]'), so a stall lists it in `active`.
 * An app without that hook (another Celery-style object) is left as it is.
 */
function trackCeleryTasks(app: CeleryLikeApp, pulse: Pulse): void {
  const worker = app as { createTaskHandler?: unknown };
  if (typeof worker.createTaskHandler !== 'function') return;
  const create = worker.createTaskHandler as () => (message: unknown) => unknown;
  worker.createTaskHandler = function createTrackedTaskHandler(this: unknown) {
    const handle = create.call(this);
    return (message: unknown) => {
      if (message === null || typeof message !== 'object') return handle(message);
      let label: string;
      try {
        label = taskLabel(message as CeleryMessage);
      } catch {
        return handle(message); // not a message the label can be read from: celery-node reports it
      }
      return pulse.track(label, () => handle(message));
    };
  };
}
