import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { classifyNetworkError } from './http-errors.ts';
import { type ClientTls, RequestDeadline } from './http-options.ts';

/**
 * POSTs to one URL over keep-alive connections, for outputs that speak HTTP themselves. It
 * answers with whatever status the sink sent, for the output to read (classifyStatus); what
 * never became an answer is thrown classified: RetryableError (refused, reset, request_timeout,
 * the write's signal) or HaltError (unknown host, a certificate that does not verify).
 * Importing this module loads node:http's client side: outputs load it only when configured.
 */

export interface HttpClientOptions {
  url: string;
  /** Read once at start (readClientTls); used for https URLs. */
  tls: ClientTls | undefined;
  /** A request without a full answer by then is abandoned. */
  timeoutMs: number;
  /** Sent with every request: authentication (authHeaders), user-agent, the config's extras. */
  headers: Record<string, string>;
  /** Compress bodies with gzip (off the event loop's critical path: zlib's thread pool). */
  gzip: boolean;
  /** Bytes of an answer's body kept; the sink's words, not its data. */
  maxAnswerBytes: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body's first `maxAnswerBytes`, as text. */
  body: string;
  /** The same bytes, for sinks that answer in binary (OTLP's protobuf partial_success). */
  bytes: Buffer;
}

const gzipAsync = promisify(gzip);

export class HttpClient {
  /** Named in errors and dead-letter reasons: origin and path, never credentials. */
  readonly target: string;
  private readonly url: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly options: HttpClientOptions;

  constructor(options: HttpClientOptions) {
    this.options = options;
    this.url = new URL(options.url);
    this.target = `${this.url.origin}${this.url.pathname}`;
    this.agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({ keepAlive: true, ...options.tls })
        : new HttpAgent({ keepAlive: true });
  }

  async post(body: Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const deadline = new RequestDeadline(signal, this.options.timeoutMs);
    try {
      const all = { ...this.options.headers, ...headers };
      let payload = body;
      if (this.options.gzip) {
        payload = await gzipAsync(body);
        all['content-encoding'] = 'gzip';
      }
      all['content-length'] = String(payload.length);
      deadline.signal.throwIfAborted();
      return await this.send(payload, all, deadline.signal);
    } catch (err) {
      throw deadline.abandoned(this.target, err) ?? classifyNetworkError(err, this.target);
    } finally {
      deadline.done();
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private send(payload: Buffer, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const max = this.options.maxAnswerBytes;
    return new Promise((resolvePromise, reject) => {
      const req = request(this.url, { method: 'POST', headers, agent: this.agent, signal }, (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (d: Buffer) => {
          if (size < max) parts.push(d);
          size += d.length;
        });
        res.on('end', () => {
          const bytes = Buffer.concat(parts).subarray(0, max);
          resolvePromise({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: bytes.toString('utf8'),
            bytes,
          });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      // Settle at the abort whatever state the answer is in (half a body ends in no event at all).
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      req.end(payload);
    });
  }
}
