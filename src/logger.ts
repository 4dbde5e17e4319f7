import { pino } from 'pino';

export type Logger = pino.Logger;

const WORKER_ID = process.env.ESTUARY_WORKER_ID;
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * JSON lines on stderr: stdout belongs to the `stdout` output, so records and our own
 * logs never interleave there.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      // Worker processes (service.workers) say which they are.
      base: { pid: process.pid, ...(WORKER_ID ? { worker: Number(WORKER_ID) } : {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger for tests and tools: nothing printed. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** Calls `fn` at most once per `intervalMs` with that call's arguments, counting what it skipped. */
export function rateLimited<A extends unknown[]>(
  intervalMs: number,
  fn: (suppressed: number, ...args: A) => void,
): (...args: A) => void {
  let last = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (...args: A) => {
    const now = Date.now();
    if (now - last < intervalMs) {
      suppressed += 1;
      return;
    }
    last = now;
    fn(suppressed, ...args);
    suppressed = 0;
  };
}
