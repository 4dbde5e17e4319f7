import {
  errorMessage,
  HaltError,
  isWriteError,
  parseRetryAfter,
  RejectError,
  RetryableError,
  type WriteError,
} from '../core/errors.ts';
import { classifyNetError } from '../outputs/net-errors.ts';
import { TooLargeError } from './request.ts';

/**
 * What an HTTP sink's answer, or a request that never got one, means for the data — once,
 * for every network output:
 *
 *   2xx                           done
 *   401, 403                      halt: credentials or permissions; no retry of this data fixes them
 *   404                           halt: a missing index, stream or endpoint (reject, where the
 *                                 output says 404 names the data itself)
 *   413                           split: the request layer halves the request
 *   408, 429, 5xx                 retry, after the sink's Retry-After
 *   other 4xx                     reject: this data will never pass, with the sink's words
 *   1xx, 3xx                      halt: not the endpoint we meant (redirects are not followed)
 *   refused, reset, timeout, DNS  retry
 *   unknown host, TLS verification  halt
 *
 * A halt keeps every record: a credential that expires must never turn into lost logs.
 */

/** How one sink is named in messages. */
export interface HttpSink {
  /** Where and what: `http://es:9200: _bulk`. Origin and path only, never credentials. */
  at: string;
  /** The sink in prose: `the cluster`, `Loki`. */
  name: string;
  /** What to check, appended to the message of these statuses. */
  hints?: { 401?: string; 403?: string; 404?: string };
  /** 404 names the data (a document), not the endpoint: reject it instead of halting. */
  notFoundRejects?: boolean;
}

export interface HttpAnswer {
  status: number;
  /** The sink's words, as they follow the status in messages: ` (type: reason)`, `: text`. */
  detail: string;
  retryAfter?: string | string[] | undefined;
}

const PHRASES: Record<number, string> = {
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not found',
  413: 'request entity too large',
};

/** undefined for 2xx; else the error that says what the answer means (TooLargeError: split). */
export function classifyStatus(answer: HttpAnswer, sink: HttpSink): WriteError | TooLargeError | undefined {
  const { status, detail } = answer;
  if (status >= 200 && status < 300) return undefined;
  const phrase = PHRASES[status];
  const hint = sink.hints?.[status as 401 | 403 | 404];
  const message = `${sink.at}: ${status}${phrase ? ` ${phrase}` : ''}${detail}${hint ? `: ${hint}` : ''}`;
  if (status === 413) return new TooLargeError(message);
  if (status === 401 || status === 403) return new HaltError(message);
  if (status === 404) return sink.notFoundRejects ? new RejectError(message) : new HaltError(message);
  if (status === 408 || status === 429 || status >= 500) {
    return new RetryableError(message, { retryAfterMs: parseRetryAfter(answer.retryAfter) });
  }
  if (status >= 400)
    return new RejectError(`${sink.at}: ${sink.name} refused the request: ${status}${detail}`);
  return new HaltError(`${message}: not an answer of the endpoint configured (redirects are not followed)`);
}

/**
 * Node's messages for certificate failures, for clients that keep only the message (the
 * Elasticsearch client's ConnectionError does). Most specific first.
 */
const TLS_VERIFY_MESSAGES: readonly [RegExp, string][] = [
  [/self[- ]signed certificate in certificate chain/i, 'SELF_SIGNED_CERT_IN_CHAIN'],
  [/self[- ]signed certificate/i, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/unable to verify the first certificate/i, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  [/unable to get local issuer certificate/i, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  [/unable to get issuer certificate/i, 'UNABLE_TO_GET_ISSUER_CERT'],
  [/certificate has expired/i, 'CERT_HAS_EXPIRED'],
  [/certificate is not yet valid/i, 'CERT_NOT_YET_VALID'],
  [/does not match certificate's altnames/i, 'ERR_TLS_CERT_ALTNAME_INVALID'],
];

/**
 * A request that got no answer, by the rules every network output shares (outputs/net-errors):
 * an unknown host or a certificate that does not verify halts, the rest (refused, reset,
 * timed out, EAI_AGAIN) retries. HTTP clients bury the error code — in a cause, or only in
 * the message — so it is dug out first. Errors already classified pass unchanged.
 */
export function classifyNetworkError(err: unknown, at: string): WriteError {
  if (isWriteError(err)) return err;
  const code = errorCode(err);
  const own = (err as { code?: unknown } | null)?.code;
  const coded =
    code === undefined || own === code
      ? err
      : Object.assign(new Error(errorMessage(err), { cause: err }), { code });
  return classifyNetError(coded, at);
}

/** The error's code, its causes', or one its message names (`getaddrinfo ENOTFOUND es`, `self-signed certificate`). */
function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code !== '') return code;
  }
  const text = errorMessage(err);
  for (const [pattern, code] of TLS_VERIFY_MESSAGES) if (pattern.test(text)) return code;
  return /\b(E[A-Z][A-Z_]+)\b/.exec(text)?.[1];
}
