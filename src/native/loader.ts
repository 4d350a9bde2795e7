import * as path from 'node:path';
import { pulseError } from '../contract/errors';

/** The addon's per-pulse handle (native/addon.cc). */
export interface NativeHandle {
  start(): null | { errno: number; op: number };
  answer(): void;
  /** A failing health check withholds beats; veto('', '') lifts it. */
  veto(message: string, fields: string): void;
  stop(remove: boolean): void;
  stats(): NativeStats;
  /** track(label) -> id, untrack(id): the labels a stall's diagnosis lists. */
  track(label: string): number;
  untrack(id: number): void;
  expectStall(seconds: number, reason: string): void;
  /** The current stall's diagnosis, and the last one's, as JSON text ('' when none). */
  stall(): string;
  lastStall(): string;
  /** READY=1 to systemd: 0 or the errno of the send. */
  ready(): number;
  /**
   * Before start(): the endpoint's settings; with a host ('' = every
   * interface) binds now. null, or the errno and call that failed.
   */
  endpoint(version: string, runtime: string, interval: number, maxStall: number, host: string | null, port: number): null | { errno: number; op: string };
  /** The exposition text of /metrics. */
  metrics(): string;
  /** The bound address ("127.0.0.1:9464"), or null without listen. */
  listenAddress(): string | null;
}

export interface NativeStats {
  running: boolean;
  beats: number;
  withheld: number;
  vetoed: number;
  errors: number;
  lastBeatMs: number;
  loopSilentMs: number;
  stalled: boolean;
  errno: number;
  errorOp: number;
  errorMs: number;
  notifySent: number;
  notifyErrno: number;
  notifyErrorMs: number;
}

export interface NativeBinding {
  PulseHandle: new (
    file: string,
    interval: number,
    maxStall: number,
    staticFields: string,
    removeOnStop: boolean,
    logStalls: number,
    syscallNames: string,
    fdFirstSyscalls: string,
    stackUnavailable: string,
    stackApi: bigint | undefined,
    stackCtx: bigint | undefined,
    exitOnStall: number,
    notifySocket: string,
    watchdogUsec: number,
    ownFiles: string,
    nativeStack: boolean,
  ) => NativeHandle;
  sourceDigest: string;
  /** nativeStack captures (signals sent) by this process: for tests. */
  nativeStackCaptures(): number;
}

/** Package root: the folder holding binding.gyp and prebuilds/. */
export const PACKAGE_ROOT = path.join(__dirname, '..', '..');

/**
 * Test hook, not a setting: load the addon from this folder instead of the
 * package. The tests point it at a folder with no build to make the addon
 * unloadable and exercise the fallback.
 */
export const TEST_NATIVE_PATH_ENV = 'CELERY_PULSE_TEST_NATIVE_PATH';

let loaded: { binding: NativeBinding } | { error: unknown } | undefined;

/** Loads the addon once per environment (prebuild first, then a local build). */
export function loadNative(): NativeBinding {
  if (loaded === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const load = require('node-gyp-build') as (dir: string) => NativeBinding;
      loaded = { binding: load(process.env[TEST_NATIVE_PATH_ENV] || PACKAGE_ROOT) };
    } catch (error) {
      loaded = { error };
    }
  }
  if ('binding' in loaded) return loaded.binding;
  const reason = loaded.error instanceof Error ? loaded.error.message : String(loaded.error);
  throw pulseError(Error, 'ERR_PULSE_NATIVE_UNAVAILABLE', `the native addon could not be loaded: ${reason}`, {
    cause: loaded.error,
  });
}

/** What a native FileOp (native/pulse_file.h) was doing, for messages. */
export const FILE_OPS = [
  'none',
  'mkdir',
  'inspect',
  'not-regular',
  'write',
  'rename',
  'touch',
  'remove',
  'resolve',
] as const;
export type FileOpName = (typeof FILE_OPS)[number];
