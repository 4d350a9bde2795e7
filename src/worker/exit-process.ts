// Ends the whole process from a worker thread, with a given status, at once.
// process.exit() in a worker ends only that worker, and a signal would make
// the status 128 + its number. WASI's proc_exit is the C library's exit()
// (uvwasi), called from this thread: the process ends with exactly `status`,
// however stuck its main thread is.
import type { WASI as WasiClass } from 'node:wasi';

// The WebAssembly global, typed here: the project's lib has no DOM types.
interface Wasm {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => object;
}
const { WebAssembly: wasm } = globalThis as unknown as { WebAssembly: Wasm };

// A module importing wasi_snapshot_preview1.proc_exit(i32), exporting
// `memory` and `_start`, which calls it with `status` (0 to 255).
function module(status: number): Uint8Array {
  const leb = (n: number) => [n]; // every size below is under 128
  const text = (s: string) => [...leb(s.length), ...Buffer.from(s)];
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  // i32.const takes a signed LEB128: two bytes from 64 on.
  const constant = status < 64 ? [status] : [0x80 | (status & 0x7f), status >> 7];
  const body = [0x00, 0x41, ...constant, 0x10, 0x00, 0x0b]; // no locals; i32.const; call 0; end
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x00]), // types: (i32) -> (), () -> ()
    ...section(2, [0x01, ...text('wasi_snapshot_preview1'), ...text('proc_exit'), 0x00, 0x00]),
    ...section(3, [0x01, 0x01]), // function 1 has type 1
    ...section(5, [0x01, 0x00, 0x01]), // one memory of one page
    ...section(7, [0x02, ...text('_start'), 0x00, 0x01, ...text('memory'), 0x02, 0x00]),
    ...section(10, [0x01, body.length, ...body]),
  ]);
}

export function exitProcess(status: number): never {
  // Bun's and Deno's node:wasi do not end the process from a worker (Deno's
  // ends only the worker): there, SIGKILL.
  const node = !process.versions.bun && !(process.versions as Record<string, string | undefined>).deno;
  if (node) wasiExit(status);
  // Not reached on Node. Elsewhere the process still ends, with status 137.
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
}

function wasiExit(status: number): void {
  try {
    // WASI is experimental on Node 20 and warns when loaded: loaded only
    // here, with the warning silenced, since it would be the last line of a
    // process that ends for another reason.
    process.removeAllListeners('warning');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { WASI } = require('node:wasi') as { WASI: typeof WasiClass };
    const wasi = new WASI({ version: 'preview1', returnOnExit: false } as ConstructorParameters<typeof WasiClass>[0]);
    wasi.start(new wasm.Instance(new wasm.Module(module(status)), wasi.getImportObject()));
  } catch {
    // no WASI here: the caller's SIGKILL
  }
}
