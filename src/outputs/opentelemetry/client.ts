import { HttpClient } from '../../delivery/http-client.ts';
import { classifyStatus, type HttpSink } from '../../delivery/http-errors.ts';
import { authHeaders, type ClientTls } from '../../delivery/http-options.ts';
import { decodeResponse, decodeStatusMessage, type PartialSuccess } from '../../inputs/opentelemetry/otlp.ts';
import type { OtlpOutputConfig } from './config.ts';

/**
 * One call — `POST` of an ExportLogsServiceRequest — and what the answer means. The shared
 * rules (delivery/http-errors.ts) are OTLP's: 429, 502, 503 and 504 are retried after their
 * Retry-After (so are other 5xx and 408: data is never dropped for a server's fault), other
 * 4xx reject the request's records, 401/403 halt, 404 halts (the endpoint is not a collector's
 * /v1/logs), 413 splits. A 200 may carry partial_success: the caller decides.
 */

const USER_AGENT = 'estuary/0.1 (opentelemetry output)';
/** Collectors answer with a Status or a partial_success: short. */
const MAX_ANSWER = 16 * 1024;

export class OtlpClient {
  private readonly http: HttpClient;
  private readonly sink: HttpSink;
  private readonly contentType: string;
  private readonly json: boolean;

  constructor(config: OtlpOutputConfig, tls: ClientTls | undefined) {
    this.json = config.encoding === 'json';
    this.contentType = this.json ? 'application/json' : 'application/x-protobuf';
    this.http = new HttpClient({
      url: config.endpoint,
      tls,
      timeoutMs: config.request_timeout,
      headers: {
        ...config.headers,
        'user-agent': USER_AGENT,
        ...authHeaders(config.bearer_token === undefined ? undefined : { bearerToken: config.bearer_token }),
      },
      gzip: config.compression === 'gzip',
      maxAnswerBytes: MAX_ANSWER,
    });
    this.sink = {
      at: this.http.target,
      name: 'the collector',
      hints: {
        401: 'the collector (or a gateway before it) refused the credentials; check headers or bearer_token',
        403: 'the credentials may not send logs to this endpoint',
        404: "is endpoint the collector's OTLP/HTTP logs path (…/v1/logs)?",
      },
    };
  }

  /** Resolves with the answer's partial_success once the collector took the request. */
  async export(body: Buffer, signal: AbortSignal): Promise<PartialSuccess> {
    const answer = await this.http.post(body, { 'content-type': this.contentType }, signal);
    const type = String(answer.headers['content-type'] ?? '');
    const json = type === '' ? this.json : type.includes('json');
    if (answer.status >= 200 && answer.status < 300) return decodeResponse(answer.bytes, json);
    const said =
      (type.includes('protobuf') || type.includes('json')
        ? decodeStatusMessage(answer.bytes, json)
        : undefined) ?? answer.body.trim();
    const error = classifyStatus(
      {
        status: answer.status,
        detail: said === '' ? '' : `: ${said}`,
        retryAfter: answer.headers['retry-after'],
      },
      this.sink,
    );
    if (error) throw error;
    return { rejected: 0, message: '' };
  }

  close(): void {
    this.http.close();
  }
}
