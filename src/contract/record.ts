// The JSON record in the healthcheck file, written byte for byte as the
// addon writes it (native/heartbeat.cc, Heartbeat::Record).

export type RecordState = 'running' | 'stalled' | 'unhealthy' | 'stopped' | 'exited';

/** "2026-11-25T13:14:15.123Z" */
export function iso(wallMs: number): string {
  return new Date(wallMs).toISOString();
}

/** "12.3 s" */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A JSON string literal's content, escaped as the addon's JsonEscape does:
 * quotes and backslashes, and control bytes as \u00xx. The message may carry a
 * health check's error text.
 */
export function jsonEscape(text: string): string {
  return text.replace(/["\\\u0000-\u001f]/g, (c) =>
    c === '"' || c === '\\' ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/**
 * One line of JSON. `staticFields` are the pulse's fixed members (pid,
 * settings), and `extraFields` this record's own (a failing health check's),
 * both already serialised without braces.
 */
export function record(
  state: RecordState,
  message: string,
  wallMs: number,
  lastBeatMs: number,
  loopSilentMs: number,
  staticFields: string,
  stalledSinceMs?: number,
  extraFields = '',
): string {
  let out = `{"state":"${state}","message":"${jsonEscape(message)}","updatedAt":"${iso(wallMs)}","lastBeatAt":`;
  out += lastBeatMs > 0 ? `"${iso(lastBeatMs)}"` : 'null';
  if ((state === 'stalled' || state === 'exited') && stalledSinceMs !== undefined) out += `,"stalledSince":"${iso(stalledSinceMs)}"`;
  out += `,"loopSilentMs":${Math.trunc(loopSilentMs)}`;
  if (extraFields) out += `,${extraFields}`;
  if (staticFields) out += `,${staticFields}`;
  return `${out}}\n`;
}
