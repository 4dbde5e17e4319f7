import type { readClientTls } from '../config/values.ts';
import { RetryableError } from '../core/errors.ts';
import { abortError } from '../outputs/abort.ts';

/**
 * What every HTTP output sets up the same way, whichever client sends its requests (node:http
 * for Loki, the official client for Elasticsearch): the Authorization header, and a request's
 * time limit under the write deadline. Nothing here loads an HTTP client.
 */

/** TLS options from an output's `tls:` block, read once at start (config/values readClientTls). */
export type ClientTls = ReturnType<typeof readClientTls>;

export type HttpAuth =
  | { username: string; password: string }
  | { bearerToken: string }
  /** Elasticsearch's base64 `id:api_key`. */
  | { apiKey: string };

/** The `authorization` header for these credentials; none without. */
export function authHeaders(auth: HttpAuth | undefined): Record<string, string> {
  if (auth === undefined) return {};
  if ('username' in auth) {
    return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` };
  }
  if ('bearerToken' in auth) return { authorization: `Bearer ${auth.bearerToken}` };
  return { authorization: `ApiKey ${auth.apiKey}` };
}

/**
 * One request's signal: aborted by the write's (its deadline, or shutdown) or after the
 * output's `request_timeout`, whichever comes first; so no request outlives the write that
 * sent it. `done()` when the request ends, to clear the timer.
 */
export class RequestDeadline {
  readonly signal: AbortSignal;
  private readonly write: AbortSignal;
  private readonly timeoutMs: number;
  private readonly timer: NodeJS.Timeout;
  private timedOut = false;

  constructor(write: AbortSignal, timeoutMs: number) {
    const own = new AbortController();
    this.write = write;
    this.timeoutMs = timeoutMs;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      own.abort();
    }, timeoutMs);
    this.signal = AbortSignal.any([write, own.signal]);
  }

  done(): void {
    clearTimeout(this.timer);
  }

  /** Why the request was given up, when it was: retryable either way. */
  abandoned(at: string, cause?: unknown): RetryableError | undefined {
    if (this.write.aborted) return abortError(this.write, at);
    if (this.timedOut) {
      return new RetryableError(`${at}: no answer within request_timeout (${this.timeoutMs}ms)`, { cause });
    }
    return undefined;
  }
}
