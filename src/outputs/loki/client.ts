import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { readClientTls } from '../../config/values.ts';
import { errorMessage, parseRetryAfter, RejectError, RetryableError } from '../../core/errors.ts';
import type { LokiConfig } from './config.ts';
import type { Body } from './encode.ts';

/**
 * One call — `POST` to the push endpoint — and what Loki's answer means for the buffer:
 *
 *   2xx                      done
 *   400                      Loki refused entries (line too long, too far behind, invalid labels…):
 *                            the request's entries go to the dead-letter queue with Loki's words
 *   413                      the body is over a limit (Loki's, or a proxy's): the caller halves it
 *   401, 403                 fatal: credentials or tenant
 *   429, 5xx, 408, network,  retried by the buffer, after Loki's Retry-After when it sends one
 *   request_timeout
 *   other 4xx                fatal, with Loki's words
 *
 * Loki stores the valid entries of a request it answers 400 and says which it refused only in
 * prose; the whole request is dead-lettered, and a replay of it is harmless because Loki
 * ignores an entry identical (time and line) to one its stream already holds.
 */

export type PushOutcome =
  | { kind: 'ok' }
  | { kind: 'reject'; reason: string }
  | { kind: 'too_large'; reason: string };

const USER_AGENT = 'estuary/0.1 (loki output)';
/** Loki's answers are one-line reasons, or a list of refused entries: enough to keep. */
const MAX_REASON = 4096;

const gzipAsync = promisify(gzip);

export class LokiClient {
  private readonly url: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly headers: Record<string, string>;
  private readonly gzip: boolean;
  private readonly timeoutMs: number;
  /** Named in errors and dead-letter reasons: origin and path, never credentials. */
  readonly target: string;

  constructor(config: LokiConfig, configDir: string) {
    this.url = new URL(config.url);
    this.target = `${this.url.origin}${this.url.pathname}`;
    this.gzip = config.encoding === 'json' && config.compression === 'gzip';
    this.timeoutMs = config.request_timeout;
    this.agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({
            keepAlive: true,
            ...readClientTls(config.tls, configDir),
          })
        : new HttpAgent({ keepAlive: true });
    this.headers = { ...config.headers, 'user-agent': USER_AGENT };
    if (config.username !== undefined) {
      const basic = Buffer.from(`${config.username}:${config.password ?? ''}`).toString('base64');
      this.headers.authorization = `Basic ${basic}`;
    } else if (config.bearer_token !== undefined) {
      this.headers.authorization = `Bearer ${config.bearer_token}`;
    }
  }

  /** One push. Resolves with what Loki made of it, or throws RetryableError / RejectError. */
  async push(body: Body, tenant: string | undefined): Promise<PushOutcome> {
    const headers: Record<string, string> = { ...this.headers, 'content-type': body.contentType };
    let payload = body.body;
    if (this.gzip) {
      payload = await gzipAsync(payload);
      headers['content-encoding'] = 'gzip';
    }
    if (tenant !== undefined) headers['x-scope-orgid'] = tenant;
    headers['content-length'] = String(payload.length);
    let answer: Answer;
    try {
      answer = await this.send(payload, headers);
    } catch (err) {
      if (err instanceof TimeoutError) {
        throw new RetryableError(`${this.target}: no answer within request_timeout (${this.timeoutMs}ms)`, {
          cause: err,
        });
      }
      // Connection refused or reset, DNS, TLS: all may pass next time.
      throw new RetryableError(`${this.target}: ${errorMessage(err)}`, { cause: err });
    }
    const outcome = classify(answer.status, answer.body, answer.headers, this.target, tenant);
    if (outcome instanceof Error) throw outcome;
    return outcome;
  }

  close(): void {
    this.agent.destroy();
  }

  private send(payload: Buffer, headers: Record<string, string>): Promise<Answer> {
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolvePromise, reject) => {
      const req = request(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          if (size < MAX_REASON * 4) parts.push(d);
          size += d.length;
        });
        res.on('end', () => {
          clearTimeout(timer);
          resolvePromise({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts).toString('utf8'),
          });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
      const timer = setTimeout(() => req.destroy(new TimeoutError()), this.timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.end(payload);
    });
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** What an answer means; an Error is thrown by the caller. */
function classify(
  status: number,
  body: string,
  headers: IncomingHttpHeaders,
  target: string,
  tenant: string | undefined,
): PushOutcome | RetryableError | RejectError {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  const said = body.trim().slice(0, MAX_REASON);
  const words = said === '' ? '' : `: ${said}`;
  const who = tenant === undefined ? '' : ` (tenant ${tenant})`;
  if (status === 400) return { kind: 'reject', reason: `Loki refused the entries (400)${who}${words}` };
  if (status === 413) return { kind: 'too_large', reason: `${target}: 413 request entity too large${words}` };
  if (status === 401) {
    return new RejectError(
      `${target}: 401 unauthorized${who}${words}: Loki (or the gateway before it) refused the credentials; check username/password or bearer_token, and tenant_id`,
    );
  }
  if (status === 403) {
    return new RejectError(
      `${target}: 403 forbidden${who}${words}: the credentials may not push logs${tenant === undefined ? '' : ' for this tenant'}`,
    );
  }
  if (status === 408 || status === 429 || status >= 500) {
    return new RetryableError(`${target}: ${status}${who}${words}`, {
      retryAfterMs: parseRetryAfter(headers['retry-after']),
    });
  }
  if (status === 404) {
    return new RejectError(
      `${target}: 404 not found: is url Loki's push endpoint (…/loki/api/v1/push)?${words}`,
    );
  }
  return new RejectError(`${target}: Loki refused the request: ${status}${who}${words}`);
}
