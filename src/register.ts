import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { Pulse } from './contract/pulse';

// Zero-code start: `node --require celery-pulse-native/register app.js`, or
// `--import` for ESM, or either in NODE_OPTIONS. Starts one pulse from the
// CELERY_PULSE_* env vars before the app runs, or ends the process with the
// coded error: a worker must never run silently without its heartbeat.
//
// NODE_OPTIONS reaches every node process in the container, so this module
// decides first whether this process is the one to pulse. It is not when it is
// - a worker thread (preloads run there too; the main thread owns the pulse),
// - this package's CLI (a probe that beat the file would always pass),
// - a package-manager launcher (`npm start`: the app it spawns is the worker),
// - a child of a process that already pulses the same file (fork() passes
//   --require on; two writers would keep the file fresh for a wedged parent).

/** Left in the env for child processes: "<pid>:<file>" of the registered pulse. */
export const REGISTERED_ENV = 'CELERY_PULSE_REGISTERED';

/** The pulse this module started, if this process is the one that pulses. */
export let pulse: Pulse | undefined;

const LAUNCHER = /^(npm-cli|npx-cli|npm|npx|yarn|yarnpkg|pnpm|pnpx|corepack)(-[\d.]+)?\.[cm]?js$/;

function realpath(file: string): string | undefined {
  try {
    return fs.realpathSync(file);
  } catch {
    return undefined;
  }
}

function notThisProcess(): boolean {
  if (!isMainThread) return true;
  const main = process.argv[1] ? realpath(process.argv[1]) : undefined;
  if (main === undefined) return false; // node -e, the REPL, stdin
  const own = [path.join(__dirname, 'cli', 'cli.js'), path.join(__dirname, '..', 'bin', 'celery-pulse-native.js')];
  if (own.some((file) => realpath(file) === main)) return true;
  return LAUNCHER.test(path.basename(main));
}

function fail(error: unknown): never {
  const coded = error as { message?: unknown; code?: unknown };
  const message = typeof coded?.message === 'string' ? coded.message : String(error);
  const code = typeof coded?.code === 'string' ? ` (${coded.code})` : '';
  process.stderr.write(
    `${message}${code}\n` +
      'celery-pulse-native/register: not starting the app without its heartbeat; fix the CELERY_PULSE_* settings\n',
  );
  process.exit(1);
}

function register(): void {
  if (notThisProcess()) return;
  // Loaded only here: the CLI and launchers above never load the addon.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const index = require('./index') as typeof import('./index');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { resolveOptions } = require('./contract/options') as typeof import('./contract/options');
  let file: string;
  try {
    file = resolveOptions({}, process.env).file;
  } catch (error) {
    fail(error);
  }
  const marker = process.env[REGISTERED_ENV];
  if (marker !== undefined) {
    const colon = marker.indexOf(':');
    const pid = marker.slice(0, colon);
    if (pid === String(process.pid)) return; // preloaded twice (--require and --import)
    if (marker.slice(colon + 1) === file) return; // an ancestor pulses this file
  }
  try {
    pulse = index.start();
  } catch (error) {
    fail(error);
  }
  process.env[REGISTERED_ENV] = `${process.pid}:${pulse.file}`;
}

register();
