// The owner's side of the worker strategy's endpoint: starts its thread
// (endpoint-thread.ts), waits until it listens or fails, so a bad address
// throws from start() before anything else starts, and stops it.
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { listenError } from '../contract/endpoint';
import type { ResolvedOptions } from '../contract/options';
import type { EndpointData } from './endpoint-thread';

const THREAD_SCRIPT = path.join(__dirname, 'endpoint-thread.js');
const THREAD_BOOT = `require(${JSON.stringify(THREAD_SCRIPT)});`;
// The thread loads Node's http and this package's CLI modules first.
const START_WAIT_MS = 15000;
const STOP_WAIT_MS = 1000;

export interface EndpointHandle {
  /** The bound address: "127.0.0.1:9464", "[::]:9464". */
  readonly address: string;
  /** Closes the listener and every connection, then ends the thread. Idempotent. */
  close(): void;
}

export function startEndpoint(options: ResolvedOptions, state: SharedArrayBuffer): EndpointHandle {
  const listen = options.listen;
  if (listen === null) throw new TypeError('startEndpoint without listen');
  const ready = new Int32Array(new SharedArrayBuffer(8));
  const addressBuffer = new SharedArrayBuffer(2 * 64);
  const data: EndpointData = {
    host: listen.host,
    port: listen.port,
    file: options.file,
    interval: options.interval,
    maxStall: options.maxStall,
    state,
    ready: ready.buffer as SharedArrayBuffer,
    address: addressBuffer,
  };
  // As the heartbeat thread: no env, no preloads, a small heap.
  const worker = new Worker(THREAD_BOOT, {
    eval: true,
    workerData: data,
    env: {},
    execArgv: [],
    resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: 32 },
  });
  worker.unref();
  worker.on('error', () => undefined); // a failed thread leaves the endpoint dark; the heartbeat goes on
  // Blocking here is what makes a bad address throw from start(): the thread
  // binds on its own loop while this one waits.
  const giveUpAt = Date.now() + START_WAIT_MS;
  while (Atomics.load(ready, 0) === 0) {
    const left = giveUpAt - Date.now();
    if (left <= 0) break;
    Atomics.wait(ready, 0, 0, left);
  }
  const phase = Atomics.load(ready, 0);
  if (phase !== 1) {
    void worker.terminate().then(undefined, () => undefined);
    throw listenError(listen, phase === 2 ? Atomics.load(ready, 1) : os.constants.errno.ETIMEDOUT, 'listen');
  }
  const view = new Uint16Array(addressBuffer);
  let address = '';
  for (let i = 0; i < view.length && view[i] !== 0; i++) address += String.fromCharCode(view[i]);
  let closed = false;
  return {
    address,
    close() {
      if (closed) return;
      closed = true;
      worker.postMessage('close');
      const until = Date.now() + STOP_WAIT_MS;
      while (Atomics.load(ready, 0) !== 3) {
        const left = until - Date.now();
        if (left <= 0) break;
        Atomics.wait(ready, 0, 1, left);
      }
      void worker.terminate().then(undefined, () => undefined);
    },
  };
}
