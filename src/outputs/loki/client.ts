import { RejectError } from '../../core/errors.ts';
import { HttpClient } from '../../delivery/http-client.ts';
import { classifyStatus, type HttpSink } from '../../delivery/http-errors.ts';
import { authHeaders, type ClientTls } from '../../delivery/http-options.ts';
import type { LokiConfig } from './config.ts';
import type { Body } from './encode.ts';

/**
 * One call — `POST` to the push endpoint — and what Loki's answer means. The shared rules
 * (delivery/http-errors.ts) apply, with one of Loki's own:
 *
 *   400   Loki refused entries (line too long, too far behind, invalid labels…): the request's
 *         entries go to the dead-letter queue with Loki's words
 *
 * Loki stores the valid entries of a request it answers 400 and says which it refused only in
 * prose; the whole request is dead-lettered, and a replay of it is harmless because Loki
 * ignores an entry identical (time and line) to one its stream already holds. 401, 403 and 404
 * halt the output (credentials, tenant, or a URL that is not the push endpoint).
 */

const USER_AGENT = 'estuary/0.1 (loki output)';
/** Loki's answers are one-line reasons, or a list of refused entries: enough to keep. */
const MAX_REASON = 4096;

export class LokiClient {
  private readonly http: HttpClient;
  private readonly sink: HttpSink;

  constructor(config: LokiConfig, tls: ClientTls | undefined) {
    const auth =
      config.username !== undefined
        ? { username: config.username, password: config.password ?? '' }
        : config.bearer_token !== undefined
          ? { bearerToken: config.bearer_token }
          : undefined;
    this.http = new HttpClient({
      url: config.url,
      tls,
      timeoutMs: config.request_timeout,
      headers: { ...config.headers, 'user-agent': USER_AGENT, ...authHeaders(auth) },
      gzip: config.encoding === 'json' && config.compression === 'gzip',
      maxAnswerBytes: MAX_REASON,
    });
    this.sink = {
      at: this.http.target,
      name: 'Loki',
      hints: {
        401: 'Loki (or the gateway before it) refused the credentials; check username/password or bearer_token, and tenant_id',
        403: 'the credentials may not push logs to this Loki, or for this tenant',
        404: "is url Loki's push endpoint (…/loki/api/v1/push)?",
      },
    };
  }

  /** One push. Resolves when Loki took it; throws what its answer means (see above). */
  async push(body: Body, tenant: string | undefined, signal: AbortSignal): Promise<void> {
    const headers: Record<string, string> = { 'content-type': body.contentType };
    if (tenant !== undefined) headers['x-scope-orgid'] = tenant;
    const answer = await this.http.post(body.body, headers, signal);
    const said = answer.body.trim();
    const detail = `${tenant === undefined ? '' : ` (tenant ${tenant})`}${said === '' ? '' : `: ${said}`}`;
    if (answer.status === 400) throw new RejectError(`Loki refused the entries (400)${detail}`);
    const error = classifyStatus(
      { status: answer.status, detail, retryAfter: answer.headers['retry-after'] },
      this.sink,
    );
    if (error) throw error;
  }

  close(): void {
    this.http.close();
  }
}
