// The worker strategy's endpoint: a worker_threads Worker of its own that
// serves /livez, /metrics and /status with the rules and bytes of
// native/server.cc and native/endpoint.cc (its parser is http-request.ts, the
// twin of native/http_request.cc), from the pulse's shared memory and the
// file, so it answers while the owner's event loop is stuck. /livez runs
// check's own code.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { probe } from '../cli/probe';
import { verdictLine } from '../cli/cli';
import { parseSeconds } from '../contract/options';
import { workerMetrics } from './worker-metrics';
import { httpResponse, MAX_REQUEST_HEAD, parseRequest, type Parsed } from './http-request';

export interface EndpointData {
  host: string;
  port: number;
  file: string;
  interval: number;
  maxStall: number;
  /** The pulse's shared state (worker-state.ts). */
  state: SharedArrayBuffer;
  /** Int32 [phase, errno]: 0 starting, 1 listening, 2 failed, 3 closed. */
  ready: SharedArrayBuffer;
  /** The bound address, UTF-16 code units, 64 at most, 0-terminated. */
  address: SharedArrayBuffer;
}

export const Phase = { starting: 0, listening: 1, failed: 2, closed: 3 } as const;
const MAX_CONNECTIONS = 32;
const REQUEST_TIMEOUT_MS = 2000;
const TEXT = 'text/plain; charset=utf-8';
const DRAIN_MS = 500;

/** The value of `name` in a query string, undecoded (native QueryValue). */
function queryValue(query: string, name: string): string | undefined {
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if ((eq < 0 ? part : part.slice(0, eq)) === name) return eq < 0 ? '' : part.slice(eq + 1);
  }
  return undefined;
}

function main(): void {
  const data = workerData as EndpointData;
  // This thread only (Linux's nice is per thread), as native/server.cc does:
  // a flood of requests yields the CPU to the heartbeat and the loop.
  try {
    os.setPriority(Math.min(19, os.getPriority() + 5));
  } catch {
    // not permitted here: the default priority
  }
  const ready = new Int32Array(data.ready);
  const settle = (phase: number, errno = 0) => {
    Atomics.store(ready, 1, errno);
    Atomics.store(ready, 0, phase);
    Atomics.notify(ready, 0);
  };
  // Connections in the order they came, with whether a request was complete.
  const open = new Map<net.Socket, { complete: boolean }>();
  const respond = (parsed: Extract<Parsed, { status: 'ok' }>): Buffer => {
    const head = parsed.method === 'HEAD';
    const route = parsed.path;
    if (route !== '/livez' && route !== '/metrics' && route !== '/status') {
      return httpResponse(404, TEXT, 'not found: try /livez, /metrics or /status\n', head);
    }
    if (parsed.method === 'other') return httpResponse(405, TEXT, 'method not allowed: GET or HEAD\n', false, 'Allow: GET, HEAD\r\n');
    if (route === '/metrics') return httpResponse(200, 'text/plain; version=0.0.4; charset=utf-8', workerMetrics(data.state, data), head);
    if (route === '/status') {
      let record = '';
      try {
        const fd = fs.openSync(data.file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
        try {
          record = fs.fstatSync(fd).isFile() ? fs.readFileSync(fd, 'utf8') : '';
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        record = '';
      }
      if (record === '' || record.length > 65536) return httpResponse(503, 'application/json', '{"error":"the record cannot be read"}\n', head);
      return httpResponse(200, 'application/json', record, head);
    }
    let maxAge = 2 * data.interval;
    const given = queryValue(parsed.query, 'max-age');
    if (given !== undefined) {
      try {
        maxAge = parseSeconds(given, { kind: 'option', name: 'max-age' }, false);
      } catch {
        return httpResponse(400, TEXT, 'max-age must be a number of seconds from 0.01 to 86400\n', head);
      }
    }
    const result = probe(data.file, Math.round(maxAge * 1000), Date.now());
    return httpResponse(result.ok ? 200 : 503, TEXT, verdictLine(result), head);
  };
  // A verdict that cannot be had (Deno without --allow-run refuses the probe's
  // process check) is a 500 that says why; the thread lives on.
  const answer = (parsed: Extract<Parsed, { status: 'ok' }>): Buffer => {
    try {
      return respond(parsed);
    } catch (error) {
      return httpResponse(500, TEXT, `cannot answer: ${error instanceof Error ? error.message : String(error)}\n`, parsed.method === 'HEAD');
    }
  };
  const server = net.createServer((socket) => {
    if (open.size >= MAX_CONNECTIONS) {
      // Full: the oldest that has not sent a complete request goes.
      for (const [other, entry] of open) {
        if (!entry.complete) {
          other.destroy();
          open.delete(other);
          break;
        }
      }
    }
    const entry = { complete: false };
    open.set(socket, entry);
    let received = Buffer.alloc(0);
    // Not complete within 2 s: closed, with no answer.
    let timer = setTimeout(() => socket.destroy(), REQUEST_TIMEOUT_MS);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(timer);
      open.delete(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      if (entry.complete) return; // after the answer: read and dropped
      received = Buffer.concat([received, chunk.subarray(0, MAX_REQUEST_HEAD + 1 - received.length)]);
      const parsed = parseRequest(received);
      if (parsed.status === 'need-more') return;
      entry.complete = true;
      received = Buffer.alloc(0);
      const reply =
        parsed.status === 'ok' ? answer(parsed)
        : parsed.status === 'too-large' ? httpResponse(431, TEXT, 'request head too large (at most 8 KiB)\n', false)
        : httpResponse(400, TEXT, 'malformed request\n', false);
      // Sent, then a FIN; what the client still sends is dropped for a
      // short while so the close does not reset the answer away.
      socket.end(reply);
      clearTimeout(timer);
      timer = setTimeout(() => socket.destroy(), DRAIN_MS);
    });
  });
  server.on('error', (error: Error & { errno?: number }) => settle(Phase.failed, Math.abs(error.errno ?? 5)));
  server.listen({ host: data.host || undefined, port: data.port, ipv6Only: false, backlog: 511 }, () => {
    const bound = server.address();
    const text =
      bound && typeof bound === 'object'
        ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`
        : '';
    const view = new Uint16Array(data.address);
    for (let i = 0; i < text.length && i < view.length - 1; i++) view[i] = text.charCodeAt(i);
    settle(Phase.listening);
  });
  // stop(): close everything, then say so (the owner waits for it).
  parentPort?.on('message', () => {
    server.close();
    for (const socket of open.keys()) socket.destroy();
    settle(Phase.closed);
  });
}

main();
