/** Stable codes carried by every error this package throws. */
export type PulseErrorCode =
  | 'ERR_PULSE_INVALID_OPTION'
  | 'ERR_PULSE_INVALID_ENV'
  | 'ERR_PULSE_INVALID_APP'
  | 'ERR_PULSE_INVALID_ARGUMENT'
  | 'ERR_PULSE_FILE'
  | 'ERR_PULSE_FILE_IN_USE'
  | 'ERR_PULSE_LISTEN'
  | 'ERR_PULSE_TOO_MANY'
  | 'ERR_PULSE_NATIVE_UNAVAILABLE';

export type PulseError<E extends Error = Error> = E & { code: PulseErrorCode };

const PREFIX = 'celery-pulse-native: ';

export function pulseError<E extends Error>(
  Kind: new (message: string, options?: { cause?: unknown }) => E,
  code: PulseErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): PulseError<E> {
  const error = new Kind(PREFIX + message, 'cause' in extra ? { cause: extra.cause } : undefined);
  const { cause: _cause, ...fields } = extra;
  return Object.assign(error, { code }, fields);
}

/** How a value is shown in an error message: strings quoted, others as written. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (value !== null && typeof value === 'object') {
    try {
      return JSON.stringify(value) ?? String(value);
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}
