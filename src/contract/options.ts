import * as net from 'node:net';
import * as path from 'node:path';
import { pulseError, show } from './errors';
import type { LogStalls } from '../diagnosis/diagnosis';
import type { HealthCheck } from './health';
import { expandTemplate, isTemplated } from './template';

export type Strategy = 'auto' | 'native' | 'worker';
export const STRATEGIES: readonly Strategy[] = ['auto', 'native', 'worker'];

export interface PulseOptions {
  /**
   * Healthcheck file; relative paths resolve against the cwd at start. May
   * contain {pid}, {threadId}, {hostname} and {workerId} for per-process files.
   */
  file?: string;
  /** Seconds between beats (fractions allowed). */
  interval?: number;
  /** Seconds the event loop may stay silent before beats are withheld; Infinity turns the gate off. */
  maxStall?: number;
  /** `native` thread, `worker` thread fallback, or `auto` (native when the addon loads). */
  strategy?: Strategy;
  /**
   * Unlink the file on stop() instead of leaving a "stopped" record. Default:
   * true when `file` has placeholders, else false.
   */
  removeOnStop?: boolean;
  /**
   * Run on the event loop once per interval; while it returns anything but
   * true, throws or times out, beats are withheld and the record says why.
   */
  healthCheck?: HealthCheck;
  /** Seconds a healthCheck run may take before it counts as failed. Default: min(5, interval). */
  healthCheckTimeout?: number;
  /**
   * At the first withheld deadline of a stall, write where the loop is stuck to
   * stderr: `true` a block shaped like a stack trace (the default), `'json'` one
   * JSON line, `false` nothing.
   */
  logStalls?: LogStalls;
  /**
   * Seconds of event-loop silence (at least maxStall) after which the
   * heartbeat thread writes an "exited" record, logs the stall and ends the
   * process with EXIT_ON_STALL_STATUS, so a supervisor restarts it. Default:
   * off (false).
   */
  exitOnStall?: number | false;
  /**
   * 'auto' (the default): under systemd (NOTIFY_SOCKET set), the main thread's
   * first pulse feeds WatchdogSec= and sends STATUS= lines. false: never.
   */
  systemd?: 'auto' | false;
  /**
   * Serve /livez, /metrics and /status off the event loop: a port (`9464`, every
   * interface), `"127.0.0.1:9464"` or `"[::1]:9464"`; port 0 takes a free one.
   * Default: off.
   */
  listen?: number | string;
  /**
   * When the stuck thread is outside JavaScript, take its machine stack
   * (`nativeStack` in the record) with a real-time signal. Default `true`.
   */
  nativeStack?: boolean;
}

/** Where the endpoint listens: host '' is every interface. */
export interface ListenAddress {
  host: string;
  port: number;
}

export interface ResolvedOptions {
  file: string;
  interval: number;
  maxStall: number;
  strategy: Strategy;
  removeOnStop: boolean;
  healthCheck: HealthCheck | undefined;
  healthCheckTimeout: number;
  logStalls: LogStalls;
  /** Seconds; 0 = off. */
  exitOnStall: number;
  systemd: boolean;
  listen: ListenAddress | null;
  nativeStack: boolean;
}

export const ENV = {
  file: 'CELERY_PULSE_HEALTHCHECK_FILE',
  interval: 'CELERY_PULSE_HEARTBEAT_INTERVAL',
  maxStall: 'CELERY_PULSE_MAX_STALL',
  strategy: 'CELERY_PULSE_STRATEGY',
  logStalls: 'CELERY_PULSE_LOG_STALLS',
  exitOnStall: 'CELERY_PULSE_EXIT_ON_STALL',
  systemd: 'CELERY_PULSE_SYSTEMD',
  listen: 'CELERY_PULSE_LISTEN',
  nativeStack: 'CELERY_PULSE_NATIVE_STACK',
} as const;

/**
 * The exit status of a process ended by exitOnStall. Node itself exits with
 * 1 to 14 and 128 + a signal's number; 70 is none of them.
 */
export const EXIT_ON_STALL_STATUS = 70;

export const DEFAULTS = { file: '/tmp/celery_healthcheck', interval: 60, strategy: 'auto' as Strategy, healthCheckTimeout: 5 };

/** Bounds of both durations, in seconds. */
export const MIN_SECONDS = 0.01;
export const MAX_SECONDS = 86400;
// The temporary record file adds ".<name>.<pid>.<n>.tmp" to the name.
const MAX_NAME_BYTES = 200;
const MAX_PATH_BYTES = 4000;

const KNOWN = new Set<string>(['file', 'interval', 'maxStall', 'strategy', 'removeOnStop', 'healthCheck', 'healthCheckTimeout', 'logStalls', 'exitOnStall', 'systemd', 'listen', 'nativeStack']);

/** Where a value came from, for error messages: an option or an env var. */
export interface Source {
  kind: 'option' | 'env';
  name: string;
}

function invalid(source: Source, value: unknown, expected: string, Kind: typeof TypeError | typeof RangeError) {
  const code = source.kind === 'env' ? 'ERR_PULSE_INVALID_ENV' : 'ERR_PULSE_INVALID_OPTION';
  const what = source.kind === 'env' ? `env ${source.name}` : `option "${source.name}"`;
  return pulseError(Kind, code, `${what} must be ${expected}, got ${show(value)}`, {
    [source.kind === 'env' ? 'envVar' : 'option']: source.name,
    value,
  });
}

/** Strict decimal parse of a text value: no hex, no empty string, no trailing junk. */
export function parseSeconds(text: string, source: Source, allowInfinity: boolean): number {
  const trimmed = text.trim();
  if (allowInfinity && /^\+?(inf|infinity)$/i.test(trimmed)) return Infinity;
  if (!/^\+?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.test(trimmed)) {
    const expected = allowInfinity ? 'a number of seconds or "inf"' : 'a number of seconds';
    throw invalid(source, text, expected, TypeError);
  }
  return checkSeconds(Number(trimmed), source, allowInfinity, text);
}

export function checkSeconds(value: unknown, source: Source, allowInfinity: boolean, shown: unknown = value): number {
  if (typeof value !== 'number') {
    throw invalid(source, shown, 'a number of seconds', TypeError);
  }
  if (allowInfinity && value === Infinity) return value;
  const range = `a number of seconds from ${MIN_SECONDS} to ${MAX_SECONDS}${allowInfinity ? ', or Infinity' : ''}`;
  if (Number.isNaN(value) || value < MIN_SECONDS || value > MAX_SECONDS) {
    throw invalid(source, shown, range, RangeError);
  }
  return value;
}

type Env = Record<string, string | undefined>;

export function checkFile(value: unknown, source: Source, cwd = process.cwd(), env: Env = process.env): string {
  if (typeof value !== 'string') throw invalid(source, value, 'a file path string', TypeError);
  if (value.trim() === '') throw invalid(source, value, 'a non-empty file path', TypeError);
  if (value.includes('\0')) throw invalid(source, value, 'a file path without NUL bytes', TypeError);
  const expanded = expandTemplate(value, source, env);
  if (expanded.endsWith('/') || /(^|\/)\.{1,2}$/.test(expanded)) {
    throw invalid(source, value, 'the path of a file, not of a directory', TypeError);
  }
  const resolved = path.resolve(cwd, expanded);
  if (Buffer.byteLength(resolved) > MAX_PATH_BYTES) {
    throw invalid(source, value, `a path of at most ${MAX_PATH_BYTES} bytes`, RangeError);
  }
  if (Buffer.byteLength(path.basename(resolved)) > MAX_NAME_BYTES) {
    throw invalid(source, value, `a file name of at most ${MAX_NAME_BYTES} bytes`, RangeError);
  }
  return resolved;
}

export function checkStrategy(value: unknown, source: Source): Strategy {
  const text = source.kind === 'env' && typeof value === 'string' ? value.trim() : value;
  if (typeof text !== 'string' || !(STRATEGIES as readonly string[]).includes(text)) {
    throw invalid(source, value, `one of ${STRATEGIES.map((s) => `"${s}"`).join(', ')}`, TypeError);
  }
  return text as Strategy;
}

const LISTEN_EXPECTED = 'a port from 0 to 65535, "host:port" with an IPv4 address or "[ipv6]:port"';

/** `listen`: 9464, "9464", "127.0.0.1:9464", "0.0.0.0:9464", "[::]:9464". */
export function checkListen(value: unknown, source: Source): ListenAddress {
  const port = (text: string): number | undefined => (/^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined);
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 65535) throw invalid(source, value, LISTEN_EXPECTED, RangeError);
    return { host: '', port: value };
  }
  if (typeof value !== 'string') throw invalid(source, value, LISTEN_EXPECTED, TypeError);
  const text = source.kind === 'env' ? value.trim() : value;
  const bare = port(text);
  if (bare !== undefined) return { host: '', port: bare };
  const v6 = /^\[([^\]]*)\]:(\d+)$/.exec(text);
  if (v6 && net.isIPv6(v6[1]) && port(v6[2]) !== undefined) return { host: v6[1], port: port(v6[2]) as number };
  const v4 = /^([^:[\]]+):(\d+)$/.exec(text);
  if (v4 && net.isIPv4(v4[1]) && port(v4[2]) !== undefined) return { host: v4[1], port: port(v4[2]) as number };
  throw invalid(source, value, LISTEN_EXPECTED, TypeError);
}

/** How an address is written in errors and status(): "127.0.0.1:9464", "[::1]:0", ":9464". */
export function listenText(address: ListenAddress): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return `${host}:${address.port}`;
}

/**
 * Options with precedence: explicit option > env var > default. Every value is
 * checked before anything starts; errors name the option or env var and value.
 */
export function resolveOptions(options: unknown = {}, env: Env = process.env, extraKeys: readonly string[] = []): ResolvedOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw pulseError(TypeError, 'ERR_PULSE_INVALID_OPTION', `options must be an object, got ${show(options)}`, {
      value: options,
    });
  }
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!KNOWN.has(key) && !extraKeys.includes(key)) {
      throw pulseError(TypeError, 'ERR_PULSE_INVALID_OPTION', `unknown option "${key}" (known: ${[...KNOWN, ...extraKeys].join(', ')})`, {
        option: key,
        value: given[key],
      });
    }
  }
  const opt = (name: string): Source => ({ kind: 'option', name });
  const fromEnv = (name: string): Source => ({ kind: 'env', name });
  const has = (key: string) => given[key] !== undefined;

  let file: string;
  if (has('file')) file = checkFile(given.file, opt('file'), undefined, env);
  else if (env[ENV.file] !== undefined) file = checkFile(env[ENV.file], fromEnv(ENV.file), undefined, env);
  else file = DEFAULTS.file;

  let interval: number;
  if (has('interval')) interval = checkSeconds(given.interval, opt('interval'), false);
  else if (env[ENV.interval] !== undefined) interval = parseSeconds(env[ENV.interval] as string, fromEnv(ENV.interval), false);
  else interval = DEFAULTS.interval;

  let maxStall: number;
  if (has('maxStall')) maxStall = checkSeconds(given.maxStall, opt('maxStall'), true);
  else if (env[ENV.maxStall] !== undefined) maxStall = parseSeconds(env[ENV.maxStall] as string, fromEnv(ENV.maxStall), true);
  else maxStall = interval;

  let strategy: Strategy;
  if (has('strategy')) strategy = checkStrategy(given.strategy, opt('strategy'));
  else if (env[ENV.strategy] !== undefined) strategy = checkStrategy(env[ENV.strategy], fromEnv(ENV.strategy));
  else strategy = DEFAULTS.strategy;

  if (has('removeOnStop') && typeof given.removeOnStop !== 'boolean') {
    throw invalid(opt('removeOnStop'), given.removeOnStop, 'a boolean', TypeError);
  }
  // A templated file belongs to one process: left behind, it would only
  // confuse a check of all files.
  const rawFile = has('file') ? given.file : env[ENV.file];
  const templated = typeof rawFile === 'string' && isTemplated(rawFile);
  const removeOnStop = has('removeOnStop') ? given.removeOnStop === true : templated;

  if (has('healthCheck') && typeof given.healthCheck !== 'function') {
    throw invalid(opt('healthCheck'), given.healthCheck, 'a function returning true, false or a promise of one', TypeError);
  }
  const healthCheck = given.healthCheck as HealthCheck | undefined;
  const healthCheckTimeout = has('healthCheckTimeout')
    ? checkSeconds(given.healthCheckTimeout, opt('healthCheckTimeout'), false)
    : Math.min(DEFAULTS.healthCheckTimeout, interval);

  let logStalls: LogStalls = true;
  if (has('logStalls')) {
    if (given.logStalls !== true && given.logStalls !== false && given.logStalls !== 'json') {
      throw invalid(opt('logStalls'), given.logStalls, 'true, false or "json"', TypeError);
    }
    logStalls = given.logStalls;
  } else if (env[ENV.logStalls] !== undefined) {
    const text = (env[ENV.logStalls] as string).trim();
    const modes: Record<string, LogStalls> = { '1': true, '0': false, json: 'json' };
    if (!Object.hasOwn(modes, text)) throw invalid(fromEnv(ENV.logStalls), env[ENV.logStalls], '"1", "0" or "json"', TypeError);
    logStalls = modes[text];
  }

  // exitOnStall: false or unset is off; "0" in the env too.
  let exitOnStall = 0;
  let exitSource: Source | undefined;
  if (has('exitOnStall')) {
    exitSource = opt('exitOnStall');
    if (given.exitOnStall !== false) exitOnStall = checkSeconds(given.exitOnStall, exitSource, false);
  } else if (env[ENV.exitOnStall] !== undefined && (env[ENV.exitOnStall] as string).trim() !== '0') {
    exitSource = fromEnv(ENV.exitOnStall);
    exitOnStall = parseSeconds(env[ENV.exitOnStall] as string, exitSource, false);
  }
  if (exitSource !== undefined && exitOnStall > 0 && !(exitOnStall >= maxStall)) {
    const shown = exitSource.kind === 'env' ? env[ENV.exitOnStall] : given.exitOnStall;
    throw invalid(exitSource, shown, `a number of seconds of at least maxStall (${maxStall})`, RangeError);
  }

  let systemd = true;
  if (has('systemd')) {
    if (given.systemd !== 'auto' && given.systemd !== false) {
      throw invalid(opt('systemd'), given.systemd, '"auto" or false', TypeError);
    }
    systemd = given.systemd === 'auto';
  } else if (env[ENV.systemd] !== undefined) {
    const text = (env[ENV.systemd] as string).trim();
    if (text !== 'auto' && text !== '0') throw invalid(fromEnv(ENV.systemd), env[ENV.systemd], '"auto" or "0"', TypeError);
    systemd = text === 'auto';
  }


  let listen: ListenAddress | null = null;
  if (has('listen')) listen = checkListen(given.listen, opt('listen'));
  else if (env[ENV.listen] !== undefined) listen = checkListen(env[ENV.listen], fromEnv(ENV.listen));

  let nativeStack = true;
  if (has('nativeStack')) {
    if (typeof given.nativeStack !== 'boolean') throw invalid(opt('nativeStack'), given.nativeStack, 'a boolean', TypeError);
    nativeStack = given.nativeStack;
  } else if (env[ENV.nativeStack] !== undefined) {
    const text = (env[ENV.nativeStack] as string).trim();
    if (text !== '1' && text !== '0') throw invalid(fromEnv(ENV.nativeStack), env[ENV.nativeStack], '"1" or "0"', TypeError);
    nativeStack = text === '1';
  }

  return { file, interval, maxStall, strategy, removeOnStop, healthCheck, healthCheckTimeout, logStalls, exitOnStall, systemd, listen, nativeStack };
}

/** expectStall(seconds, reason?): checked like the other durations; the reason cut at 200 characters. */
export function checkExpectStall(seconds: unknown, reason: unknown): { seconds: number; reason: string } {
  const bad = (argument: string, value: unknown, expected: string, Kind: typeof TypeError | typeof RangeError) =>
    pulseError(Kind, 'ERR_PULSE_INVALID_ARGUMENT', `expectStall(seconds, reason): ${argument} must be ${expected}, got ${show(value)}`, {
      argument,
      value,
    });
  if (typeof seconds !== 'number') throw bad('seconds', seconds, 'a number of seconds', TypeError);
  if (Number.isNaN(seconds) || seconds < MIN_SECONDS || seconds > MAX_SECONDS) {
    throw bad('seconds', seconds, `a number of seconds from ${MIN_SECONDS} to ${MAX_SECONDS}`, RangeError);
  }
  if (reason !== undefined && typeof reason !== 'string') throw bad('reason', reason, 'a string', TypeError);
  return { seconds, reason: (reason ?? '').slice(0, 200) };
}

/** How often the loop is asked to answer: at least every min(1 s, maxStall / 4). */
export function pingIntervalMs(maxStall: number): number {
  return Math.max(1, Math.min(1000, (maxStall * 1000) / 4));
}
