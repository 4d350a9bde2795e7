// What both strategies' endpoints share: the package's version and runtime for
// celery_pulse_info, and the coded error of a listen that fails.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pulseError } from './errors';
import { listenText, type ListenAddress } from './options';
import { errnoName } from './status';

let cachedVersion: string | undefined;

/** The package's version, from its package.json (dist/contract/ -> the root). */
export function packageVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const text = fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8');
      cachedVersion = String((JSON.parse(text) as { version?: unknown }).version ?? 'unknown');
    } catch {
      cachedVersion = 'unknown';
    }
  }
  return cachedVersion;
}

/** "node 22.12.0", "bun 1.1.0", "deno 2.1.0". */
export function runtimeName(): string {
  const versions = process.versions as NodeJS.ProcessVersions & { bun?: string; deno?: string };
  if (versions.bun) return `bun ${versions.bun}`;
  if (versions.deno) return `deno ${versions.deno}`;
  return `node ${versions.node}`;
}

const ERRNO_TEXT: Record<string, string> = {
  EADDRINUSE: 'the address is already in use',
  EACCES: 'permission denied (a port below 1024 needs CAP_NET_BIND_SERVICE)',
  EADDRNOTAVAIL: 'no interface of this host has that address',
  EAFNOSUPPORT: 'the address family is not supported here',
};

/** ERR_PULSE_LISTEN: the address, the errno name and the failed call. */
export function listenError(address: ListenAddress, errno: number | string, op: string) {
  const code = typeof errno === 'number' ? errnoName(errno) : errno;
  const where = listenText(address);
  const why = ERRNO_TEXT[code] ?? 'the endpoint cannot listen there';
  return pulseError(Error, 'ERR_PULSE_LISTEN', `cannot listen on ${where}: ${why} (${code} during ${op})`, {
    address: where,
    errno: typeof errno === 'number' ? errno : undefined,
    syscallCode: code,
  });
}
