// The worker strategy's request parser: the twin of native/http_request.cc,
// rule for rule (a pure function over the bytes received so far).

export const MAX_REQUEST_HEAD = 8192;

export type Parsed =
  | { status: 'need-more' }
  | { status: 'bad' }
  | { status: 'too-large' }
  | { status: 'ok'; method: 'GET' | 'HEAD' | 'other'; path: string; query: string; headBytes: number };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Request-target: visible ASCII, no space; header value: tab, visible ASCII, obs-text.
const TARGET = /^[\x21-\x7e]+$/;
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function requestLine(line: string): Parsed {
  const m = /^([^ ]+) ([^ ]+) HTTP\/1\.([0-9])$/.exec(line);
  if (!m || !TOKEN.test(m[1]) || !TARGET.test(m[2]) || !m[2].startsWith('/')) return { status: 'bad' };
  const q = m[2].indexOf('?');
  return {
    status: 'ok',
    method: m[1] === 'GET' ? 'GET' : m[1] === 'HEAD' ? 'HEAD' : 'other',
    path: q < 0 ? m[2] : m[2].slice(0, q),
    query: q < 0 ? '' : m[2].slice(q + 1),
    headBytes: 0,
  };
}

function headerLine(line: string): boolean {
  const colon = line.indexOf(':');
  if (colon <= 0 || !TOKEN.test(line.slice(0, colon)) || !VALUE.test(line.slice(colon + 1))) return false;
  if (line.slice(0, colon).toLowerCase() === 'content-length') {
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!/^[0-9]{1,18}$/.test(value)) return false;
  }
  return true;
}

/** Parses the head in `bytes` (latin1): ok, need-more, bad (400) or too-large (431). */
export function parseRequest(bytes: Buffer): Parsed {
  const limit = Math.min(bytes.length, MAX_REQUEST_HEAD);
  const text = bytes.toString('latin1', 0, limit);
  let pos = 0;
  let first: Parsed | undefined;
  for (;;) {
    const nl = text.indexOf('\n', pos);
    if (nl < 0) {
      if (text.includes('\0', pos)) return { status: 'bad' };
      return bytes.length >= MAX_REQUEST_HEAD ? { status: 'too-large' } : { status: 'need-more' };
    }
    let line = text.slice(pos, nl);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    pos = nl + 1;
    if (first === undefined) {
      if (line === '') continue; // leading empty lines are tolerated
      first = requestLine(line);
      if (first.status !== 'ok') return first;
      continue;
    }
    if (line === '') return first.status === 'ok' ? { ...first, headBytes: pos } : first;
    if (!headerLine(line)) return { status: 'bad' };
  }
}

/** The response as native/server.cc writes it (HttpResponse). */
export function httpResponse(status: number, type: string, body: string, head: boolean, extra = ''): Buffer {
  const reasons: Record<number, string> = {
    200: 'OK', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed',
    431: 'Request Header Fields Too Large', 503: 'Service Unavailable',
  };
  const bytes = Buffer.from(body, 'utf8');
  const headText = `HTTP/1.1 ${status} ${reasons[status] ?? 'Internal Server Error'}\r\nContent-Type: ${type}\r\n` +
    `Content-Length: ${bytes.length}\r\nCache-Control: no-store\r\nConnection: close\r\n${extra}\r\n`;
  return head ? Buffer.from(headText, 'latin1') : Buffer.concat([Buffer.from(headText, 'latin1'), bytes]);
}
