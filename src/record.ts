// The JSON record in the healthcheck file, written byte for byte as the
// addon writes it (native/heartbeat.cc, Heartbeat::Record).

export type RecordState = 'running' | 'stalled' | 'stopped';

/** "2026-11-25T13:14:15.123Z" */
export function iso(wallMs: number): string {
  return new Date(wallMs).toISOString();
}

/** "12.3 s" */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * One line of JSON. `staticFields` are the pulse's fixed members (pid,
 * settings), already serialised without braces.
 */
export function record(
  state: RecordState,
  message: string,
  wallMs: number,
  lastBeatMs: number,
  loopSilentMs: number,
  staticFields: string,
  stalledSinceMs?: number,
): string {
  const fields: Record<string, unknown> = {
    state,
    message,
    updatedAt: iso(wallMs),
    lastBeatAt: lastBeatMs > 0 ? iso(lastBeatMs) : null,
  };
  if (state === 'stalled' && stalledSinceMs !== undefined) fields.stalledSince = iso(stalledSinceMs);
  fields.loopSilentMs = Math.trunc(loopSilentMs);
  const head = JSON.stringify(fields).slice(0, -1);
  return `${head}${staticFields ? `,${staticFields}` : ''}}\n`;
}
