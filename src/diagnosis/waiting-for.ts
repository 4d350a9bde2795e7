// waitingFor in the worker strategy: the twin of native/waiting_for.cc.
// Follows the stuck thread's descriptor through /proc to a child process, a
// socket, a pipe or FIFO, or a file. Whatever cannot be read is left unknown.
import * as fs from 'node:fs';
import { PROC_STATES, readProc } from './proc';
import type { WaitingFor } from './stall-text';

/** Processes looked at when searching this process's descendants, at most. */
const MAX_PROCS = 8192;
/** Descriptors of one process looked at, at most. */
const MAX_FDS = 4096;

function link(file: string): string {
  try {
    return fs.readlinkSync(file);
  } catch {
    return '';
  }
}

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  startTicks: number;
  depth: number;
}

function stat(pid: number): Proc | null {
  const text = readProc(`/proc/${pid}/stat`);
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const fields = text.slice(close + 2).split(' ');
  if (fields.length < 20) return null;
  return { pid, ppid: Number(fields[1]), state: fields[0], startTicks: Number(fields[19]), depth: 0 };
}

/** This process's descendants, children first, from one scan of /proc. */
function descendants(): Proc[] {
  let names: string[];
  try {
    names = fs.readdirSync('/proc').filter((n) => /^[1-9]\d*$/.test(n)).slice(0, MAX_PROCS);
  } catch {
    return [];
  }
  const all = names.map((n) => stat(Number(n))).filter((p): p is Proc => p !== null);
  const out: Proc[] = [];
  let level = new Set([process.pid]);
  for (let depth = 1; depth <= 16 && level.size > 0; depth++) {
    const next = new Set<number>();
    for (const p of all) {
      if (level.has(p.ppid)) {
        out.push({ ...p, depth });
        next.add(p.pid);
      }
    }
    level = next;
  }
  return out;
}

function holds(pid: number, targets: readonly string[]): boolean {
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`).slice(0, MAX_FDS);
  } catch {
    return false;
  }
  return fds.some((fd) => targets.includes(link(`/proc/${pid}/fd/${fd}`)));
}

function command(pid: number): string {
  let cmd = readProc(`/proc/${pid}/cmdline`).replace(/\0+$/, '').replace(/\0/g, ' ').slice(0, 512);
  if (!cmd) {
    const text = readProc(`/proc/${pid}/stat`);
    const open = text.indexOf('(');
    const close = text.lastIndexOf(')');
    if (open >= 0 && close > open) cmd = `[${text.slice(open + 1, close)}]`;
  }
  return Buffer.from(cmd, 'latin1').toString('utf8');
}

/** Clock ticks per second of /proc's start times: 100 on every Linux build in use. */
const CLOCK_TICKS = 100;

function child(p: Proc): { json: WaitingFor; line: string } {
  const cmd = command(p.pid);
  const uptime = Number(readProc('/proc/uptime').split(' ')[0]);
  const runningMs = Number.isFinite(uptime) ? Math.max(0, Math.round(uptime * 1000 - (p.startTicks * 1000) / CLOCK_TICKS)) : null;
  return {
    json: { kind: 'child', pid: p.pid, command: cmd || null, state: PROC_STATES[p.state] ?? null, runningMs },
    line: `child ${p.pid}: ${cmd}`,
  };
}

/** "0100007F:1F90" or 32 hex digits, as /proc/net/tcp prints them (32-bit words in host order). */
function address(hex: string): string {
  const [host, port] = hex.split(':');
  const bytes = Buffer.alloc(host.length / 2);
  for (let w = 0; w < host.length / 8; w++) bytes.writeUInt32LE(parseInt(host.slice(w * 8, w * 8 + 8), 16), w * 4);
  const p = parseInt(port, 16);
  if (bytes.length === 4) return `${bytes.join('.')}:${p}`;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(i * 2).toString(16));
  return `[${groups.join(':')}]:${p}`;
}

const TCP_STATES = ['', 'established', 'syn-sent', 'syn-recv', 'fin-wait1', 'fin-wait2', 'time-wait', 'close', 'close-wait', 'last-ack', 'listen', 'closing'];

function socket(inode: number): { json: WaitingFor; line: string } | null {
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6']) {
    for (const row of readProc(`/proc/net/${proto}`).split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || Number(f[9]) !== inode) continue;
      const kind = proto.startsWith('tcp') ? 'tcp' : 'udp';
      const st = parseInt(f[3], 16);
      const local = address(f[1]);
      const peer = address(f[2]);
      const listening = kind === 'tcp' && st === 10;
      return {
        json: { kind: 'socket', protocol: kind, local, peer: listening ? null : peer, state: kind === 'tcp' ? TCP_STATES[st] || null : null },
        line: `socket ${kind} ${local}${listening ? ' (listening)' : ` -> ${peer}`}`,
      };
    }
  }
  for (const row of readProc('/proc/net/unix').split('\n').slice(1)) {
    const f = row.trim().split(/\s+/);
    if (f.length < 7 || Number(f[6]) !== inode) continue;
    const p = f.slice(7).join(' ');
    return { json: { kind: 'socket', protocol: 'unix', local: p || null, peer: null }, line: `socket unix ${p || `socket:[${inode}]`}` };
  }
  return null;
}

function fsType(dev: number): string | null {
  // st_dev as the kernel encodes it: major in bits 8-19 (and 32+), minor in 0-7 and 20-31.
  const major = ((dev >>> 8) & 0xfff) | Math.floor(dev / 2 ** 32) & ~0xfff;
  const minor = (dev & 0xff) | ((dev >>> 12) & ~0xff);
  const want = `${major}:${minor}`;
  for (const row of readProc('/proc/self/mountinfo').split('\n')) {
    const f = row.split(' ');
    if (f[2] !== want) continue;
    const dash = f.indexOf('-');
    if (dash > 0 && f[dash + 1]) return f[dash + 1];
  }
  return null;
}

const enum Rank {
  Nothing = 0,
  Pipe = 1,
  File = 2,
  Socket = 3,
  Child = 4,
}

interface Found {
  rank: Rank;
  json: WaitingFor;
  line: string;
}

function resolve(fd: number, procs: () => Proc[]): Found | null {
  const path = `/proc/self/fd/${fd}`;
  const target = link(path);
  const pipe = /^pipe:\[(\d+)\]$/.exec(target);
  const sock = /^socket:\[(\d+)\]$/.exec(target);
  if (pipe || sock) {
    // A child holds the other end: the same pipe, or the peer of a socket
    // pair, which the kernel numbers next to this one (libuv gives a child
    // its stdio as socket pairs).
    const inode = Number((pipe ?? sock)![1]);
    const targets = pipe ? [target] : [`socket:[${inode + 1}]`, `socket:[${inode - 1}]`];
    let best: Proc | null = null;
    for (const p of procs()) {
      if (best !== null && p.depth <= best.depth) continue;
      if (holds(p.pid, targets)) best = p;
    }
    if (best) return { rank: Rank.Child, ...child(best) };
    if (pipe) return { rank: Rank.Pipe, json: { kind: 'pipe', inode }, line: target };
    const found = socket(inode);
    return { rank: Rank.Socket, ...(found ?? { json: { kind: 'socket', protocol: null, local: null, peer: null }, line: target }) };
  }
  if (!target.startsWith('/')) return null;
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return null;
  }
  if (st.isFIFO()) return { rank: Rank.Pipe, json: { kind: 'fifo', path: target }, line: `FIFO ${target}` };
  const type = fsType(st.dev);
  return { rank: Rank.File, json: { kind: 'file', path: target, fsType: type }, line: `file ${target}${type ? ` (${type})` : ''}` };
}

/** What a thread asleep in `syscall` on descriptor `fd` waits for; null when nothing known. */
export function waitingFor(fd: number | null, syscall: string | null): { json: WaitingFor; line: string } | null {
  let cache: Proc[] | null = null;
  const procs = (): Proc[] => (cache ??= descendants());
  if (syscall === 'wait4' || syscall === 'waitid') {
    const children = procs().filter((p) => p.depth === 1);
    const youngest = children.sort((a, b) => b.startTicks - a.startTicks)[0];
    return youngest ? child(youngest) : null;
  }
  if (fd === null) return null;
  if (link(`/proc/self/fd/${fd}`) !== 'anon_inode:[eventpoll]') {
    const found = resolve(fd, procs);
    return found ? { json: found.json, line: found.line } : null;
  }
  // An epoll set (execSync and spawnSync run a loop of their own): the most
  // telling of the descriptors it watches.
  let best: Found | null = null;
  const watched = [...readProc(`/proc/self/fdinfo/${fd}`).matchAll(/^tfd:\s*(\d+)/gm)].slice(0, 64);
  for (const m of watched) {
    const found = resolve(Number(m[1]), procs);
    if (found && (best === null || found.rank > best.rank)) best = found;
    if (best?.rank === Rank.Child) break;
  }
  return best ? { json: best.json, line: best.line } : null;
}
