/**
 * The errors that steer data. A write fails in one of three ways, and the sink driver decides
 * what happens next: `RetryableError` (transient: back off, try again), `RejectError` (this
 * data will never pass: dead-letter it) or `HaltError` (the sink refuses everything, e.g. a
 * revoked credential: keep the data, probe, resume). Inputs map `BackpressureError` to
 * "no ack" / HTTP 503.
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

/** These entries will never pass (a mapping error, a record over the sink's limit): dead-letter them. */
export class RejectError extends Error {
  override readonly name = 'RejectError';
}

/**
 * The sink refuses everything for a reason no retry of this data fixes (401, 403, a missing
 * index / stream / bucket, a TLS verification failure, an unknown host). The output stops and
 * keeps its data; the driver probes with the oldest chunk and resumes when the sink takes it.
 */
export class HaltError extends Error {
  override readonly name = 'HaltError';
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

/** The three ways a write can fail, as the sink driver tells them apart. */
export type WriteError = RetryableError | RejectError | HaltError;

/** Already one of the three kinds: classifiers pass it on unchanged. */
export function isWriteError(err: unknown): err is WriteError {
  return err instanceof RetryableError || err instanceof RejectError || err instanceof HaltError;
}
