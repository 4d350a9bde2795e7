import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Loader for the stack capture addon (native/stack/): the piece that reads
 * the JavaScript stack of a stuck thread. It uses V8's own API, so there is
 * one binary per Node ABI and libc,
 * prebuilds/<platform>-<arch>/stack/stack-abi<N>.<glibc|musl>.node, in a folder of
 * Node-API core. (The libc tag also keeps node-gyp-build, which loads the core
 * from the same folder, from ever taking one of these for the core.) A Node with no binary for its ABI gets a reason
 * instead of an error: a stall is then reported without a stack.
 */

/** The addon's exports (native/stack/stack.cc). */
export interface StackBinding {
  /**
   * On the current environment's JS thread: [api, ctx], the addresses of the
   * static pulse_stack_api and of a new context bound to this environment
   * (native/stack/stack_api.h). The core calls api->release(ctx) once.
   */
  attach(): [bigint, bigint];
  /** Digest of the sources the binary was built from (scripts/stack-digest.js). */
  sourceDigest: string;
  /** process.versions.modules of the Node it was built for. */
  abi: number;
  apiVersion: number;
  maxFrames: number;
}

export type StackLoad = { attach(): [bigint, bigint]; file: string; binding: StackBinding } | { unavailable: string };

/** Package root: the folder holding build/ and prebuilds/ (as in loader.ts). */
const PACKAGE_ROOT = path.join(__dirname, '..', '..');

/** The ABI a local build was compiled for, from its node_register_module_v<N> symbol. */
function builtAbi(file: string): string | undefined {
  try {
    const match = /node_register_module_v(\d+)/.exec(fs.readFileSync(file, 'latin1'));
    return match ? match[1] : undefined;
  } catch {
    return undefined;
  }
}

/** The C library, decided as node-gyp-build decides it for the core. */
function libc(): 'glibc' | 'musl' {
  if (process.env.LIBC === 'musl' || process.env.LIBC === 'glibc') return process.env.LIBC;
  return process.platform === 'linux' && fs.existsSync('/etc/alpine-release') ? 'musl' : 'glibc';
}

/** Where the binary for this Node is, or why there is none. */
function locate(): { file: string } | { unavailable: string } {
  const versions = process.versions as NodeJS.ProcessVersions & { bun?: string; deno?: string };
  if (versions.bun) return { unavailable: 'no stack support in Bun' };
  if (versions.deno) return { unavailable: 'no stack support in Deno' };
  const abi = process.versions.modules;
  if (process.env.PREBUILDS_ONLY !== '1') {
    const local = path.join(PACKAGE_ROOT, 'build', 'Release', 'pulse_stack.node');
    if (builtAbi(local) === abi) return { file: local };
  }
  const target = `${process.platform}-${process.arch}`;
  const lib = libc();
  const prebuild = path.join(PACKAGE_ROOT, 'prebuilds', target, 'stack', `stack-abi${abi}.${lib}.node`);
  if (fs.existsSync(prebuild)) return { file: prebuild };
  const on = lib === 'musl' ? `${target} (musl)` : target;
  return { unavailable: `no stack support built for Node ${process.version} (ABI ${abi}) on ${on}` };
}

let loaded: StackLoad | undefined;

/** Loads the stack addon once per environment. Never throws. */
export function loadStack(): StackLoad {
  if (loaded !== undefined) return loaded;
  try {
    const where = locate();
    if ('unavailable' in where) {
      loaded = where;
    } else {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const binding = require(where.file) as StackBinding;
      loaded = { attach: () => binding.attach(), file: where.file, binding };
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    loaded = { unavailable: `the stack addon could not be loaded: ${reason}` };
  }
  return loaded;
}
