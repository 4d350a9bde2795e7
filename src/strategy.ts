// Which heartbeat a pulse gets: the addon's thread, or the worker_threads
// fallback when the addon cannot load.
// Loaded with the package, so workers started from here on share its registry.
import { firstTime } from './worker/claims';
import { loadNative } from './native/loader';
import type { ResolvedOptions } from './contract/options';
import type { Pulse } from './contract/pulse';
import { NativePulse } from './native/native-pulse';
import type { WorkerPulse } from './worker/worker';

// The worker strategy's modules load on first use only.
function workerPulse(options: ResolvedOptions): WorkerPulse {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { WorkerPulse: Pulse } = require('./worker/worker') as typeof import('./worker/worker');
  return new Pulse(options);
}

export const NO_NATIVE_WARNING = 'CELERY_PULSE_NO_NATIVE';

export function startStrategy(options: ResolvedOptions): Pulse {
  switch (options.strategy) {
    case 'native':
      return new NativePulse(loadNative(), options);
    case 'worker':
      return workerPulse(options);
    case 'auto': {
      let binding;
      try {
        binding = loadNative();
      } catch (error) {
        warnNoNative(error);
        return workerPulse(options);
      }
      return new NativePulse(binding, options);
    }
  }
}

// Once per process: every thread shares the flag through the claims registry.
function warnNoNative(error: unknown): void {
  if (!firstTime()) return;
  const cause = (error as { cause?: unknown }).cause ?? error;
  const reason = (cause instanceof Error ? cause.message : String(cause)).trim().replace(/\s*\n\s*/g, '; ');
  process.emitWarning(
    `celery-pulse-native: the native addon could not be loaded (${reason}), so pulses use the "worker" strategy: ` +
      'the same gated heartbeat on a worker thread, at a few MB more memory per pulse. ' +
      'For the native thread, install on linux-x64 or linux-arm64 with glibc >= 2.28 or musl >= 1.2.3 ' +
      '(prebuilt binaries, under Node, Bun or Deno; Deno needs --allow-ffi), ' +
      'or where a C++ compiler, make and Python are available at install time so the addon is built. ' +
      'Choose strategy "worker" (or CELERY_PULSE_STRATEGY=worker) to silence this warning.',
    { type: 'CeleryPulseWarning', code: NO_NATIVE_WARNING },
  );
}
