// Reading /proc for the stall diagnosis (both strategies' JavaScript side).
import * as fs from 'node:fs';

/** The words for /proc's state letters, as native/diagnose.cc names them. */
export const PROC_STATES: Record<string, string> = {
  R: 'running',
  S: 'sleeping',
  D: 'disk-sleep',
  T: 'stopped',
  t: 'tracing-stop',
  Z: 'zombie',
  X: 'dead',
  I: 'idle',
  P: 'parked',
};

/** A /proc file's text; empty when it cannot be read. */
export function readProc(file: string): string {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return '';
  }
}
