import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import { pulseError, show } from './errors';

/**
 * Per-process healthcheck files: `file` may name {pid}, {threadId},
 * {hostname} and {workerId}, so every process (or thread) of an app keeps its
 * own file and one stuck sibling cannot hide behind a live one.
 */
export const PLACEHOLDERS = ['pid', 'threadId', 'hostname', 'workerId'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** Gives a supervisor stable worker slots; wins over the cluster worker id. */
export const WORKER_ID_ENV = 'CELERY_PULSE_WORKER_ID';

const PLACEHOLDER = /\{([^{}]*)\}/g;
// A value that becomes part of a file name: no separators, no "." or "..".
const SAFE_VALUE = /^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$/;

export interface TemplateSource {
  kind: 'option' | 'env';
  name: string;
}

type Env = Record<string, string | undefined>;

/** Whether a file option uses placeholders (then its pulse removes the file on stop). */
export function isTemplated(file: string): boolean {
  return /\{[^{}]*\}/.test(file);
}

/**
 * The worker id: CELERY_PULSE_WORKER_ID when set, else the cluster worker's
 * id, else 0 (the primary, or a process outside a cluster).
 */
export function workerId(env: Env = process.env): string {
  const given = env[WORKER_ID_ENV];
  if (given !== undefined) {
    if (!SAFE_VALUE.test(given)) {
      throw pulseError(TypeError, 'ERR_PULSE_INVALID_ENV',
        `env ${WORKER_ID_ENV} must be 1 to 64 of the characters A-Z a-z 0-9 . _ - (not "." or ".."), got ${show(given)}`,
        { envVar: WORKER_ID_ENV, value: given });
    }
    return given;
  }
  // Loaded here, not at the top: the CLI reads this module and never needs it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { worker } = require('node:cluster') as { worker?: { id: number } };
  return worker ? String(worker.id) : '0';
}

function hostnameForPath(): string {
  return os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'localhost';
}

/**
 * Replaces the placeholders of `file`. An unknown placeholder, or a brace
 * that opens none, is a coded TypeError naming the option or env var.
 */
function validate(file: string, source: TemplateSource): void {
  const fail = (why: string) => {
    const code = source.kind === 'env' ? 'ERR_PULSE_INVALID_ENV' : 'ERR_PULSE_INVALID_OPTION';
    const what = source.kind === 'env' ? `env ${source.name}` : `option "${source.name}"`;
    return pulseError(TypeError, code, `${what} ${why}, got ${show(file)}`, {
      [source.kind === 'env' ? 'envVar' : 'option']: source.name,
      value: file,
    });
  };
  const known = PLACEHOLDERS.map((p) => `{${p}}`).join(', ');
  for (const match of file.matchAll(PLACEHOLDER)) {
    if (!(PLACEHOLDERS as readonly string[]).includes(match[1])) {
      throw fail(`has an unknown placeholder {${match[1]}} (known: ${known})`);
    }
  }
  if (/[{}]/.test(file.replace(PLACEHOLDER, ''))) {
    throw fail(`has a brace that is not part of a placeholder (known: ${known})`);
  }
}

export function expandTemplate(file: string, source: TemplateSource, env: Env = process.env): string {
  validate(file, source);
  if (!isTemplated(file)) return file;
  const values: Record<Placeholder, () => string> = {
    pid: () => String(process.pid),
    threadId: () => String(threadId),
    hostname: hostnameForPath,
    workerId: () => workerId(env),
  };
  return file.replace(PLACEHOLDER, (_whole, name: Placeholder) => values[name]());
}

/**
 * For a probe: the files a templated path stands for, as a glob. What the
 * probe knows as well as the pulse does ({hostname}, and {workerId} when
 * CELERY_PULSE_WORKER_ID is set) is filled in; {pid}, {threadId} and a
 * cluster {workerId} become "*".
 */
export function templateToGlob(file: string, source: TemplateSource, env: Env = process.env): string {
  validate(file, source);
  const values: Record<Placeholder, () => string> = {
    pid: () => '*',
    threadId: () => '*',
    hostname: hostnameForPath,
    workerId: () => (env[WORKER_ID_ENV] !== undefined ? workerId(env) : '*'),
  };
  return file.replace(PLACEHOLDER, (_whole, name: Placeholder) => values[name]());
}
