/**
 * The errors that steer data. An output throws `RetryableError` or `FatalError`; the buffer
 * decides what happens next. Inputs map `BackpressureError` to "no ack" / HTTP 503.
 */
export class RetryableError extends Error {
  override readonly name = 'RetryableError';
  /** The sink asked for this delay (e.g. `Retry-After`), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** An HTTP `Retry-After` (seconds, or an HTTP date) in milliseconds, for RetryableError. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class FatalError extends Error {
  override readonly name = 'FatalError';
}

/** The buffer refuses a batch right now; the sender should try again later. */
export class BackpressureError extends Error {
  override readonly name = 'BackpressureError';
  readonly retryAfterSeconds: number;

  constructor(message: string, retryAfterSeconds = 1) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** Bad input from a sender: a clear reason, and nothing from that request is kept. */
export class InputError extends Error {
  override readonly name = 'InputError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
