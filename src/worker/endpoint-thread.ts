// The worker strategy's endpoint: a worker_threads Worker of its own that
// serves /livez, /metrics and /status with the rules of native/server.cc and
// native/endpoint.cc, from the pulse's shared memory and the file, so it
// answers while the owner's event loop is stuck. /livez runs check's own code.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import type { Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { probe } from '../cli/probe';
import { verdictLine } from '../cli/cli';
import { parseSeconds } from '../contract/options';
import { workerMetrics } from './worker-metrics';

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
  const open = new Map<Socket, { complete: boolean }>();
  const server = http.createServer({ requireHostHeader: false, maxHeaderSize: 8192, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 0 }, (req, res) => {
    const entry = open.get(req.socket);
    if (entry) entry.complete = true;
    const send = (status: number, type: string, body: string, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', Connection: 'close', ...extra });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const route = q < 0 ? url : url.slice(0, q);
    if (route !== '/livez' && route !== '/metrics' && route !== '/status') return send(404, TEXT, 'not found: try /livez, /metrics or /status\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, TEXT, 'method not allowed: GET or HEAD\n', { Allow: 'GET, HEAD' });
    if (route === '/metrics') return send(200, 'text/plain; version=0.0.4; charset=utf-8', workerMetrics(data.state, data));
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
      if (record === '' || record.length > 65536) return send(503, 'application/json', '{"error":"the record cannot be read"}\n');
      return send(200, 'application/json', record);
    }
    let maxAge = 2 * data.interval;
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const given = query.get('max-age');
    if (given !== null) {
      try {
        maxAge = parseSeconds(given, { kind: 'option', name: 'max-age' }, false);
      } catch {
        return send(400, TEXT, 'max-age must be a number of seconds from 0.01 to 86400\n');
      }
    }
    const result = probe(data.file, Math.round(maxAge * 1000), Date.now());
    return send(result.ok ? 200 : 503, TEXT, verdictLine(result));
  });
  server.on('connection', (socket: Socket) => {
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
    // Not complete within 2 s: closed, with no answer.
    const timer = setTimeout(() => {
      if (!entry.complete) socket.destroy();
    }, REQUEST_TIMEOUT_MS);
    socket.on('close', () => {
      clearTimeout(timer);
      open.delete(socket);
    });
  });
  // Malformed requests: 400 (431 for a head over 8 KiB), then closed.
  server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
    if (socket.writable) {
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      const body = error.code === 'HPE_HEADER_OVERFLOW' ? 'request head too large (at most 8 KiB)\n' : 'malformed request\n';
      if (error.code !== 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.end(`HTTP/1.1 ${status}\r\nContent-Type: ${TEXT}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      }
    }
    socket.destroy();
  });
  server.on('error', (error: Error & { errno?: number }) => settle(Phase.failed, Math.abs(error.errno ?? 5)));
  server.listen({ host: data.host || undefined, port: data.port, ipv6Only: false }, () => {
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
    server.closeAllConnections?.();
    settle(Phase.closed);
  });
}

main();
