import {
  Client,
  type ClientOptions,
  errors,
  type estypes,
  SniffingTransport,
  type TransportOptions,
} from '@elastic/elasticsearch';
import { HaltError, parseRetryAfter, RetryableError, type WriteError } from '../../core/errors.ts';
import { classifyNetworkError, classifyStatus, type HttpSink } from '../../delivery/http-errors.ts';
import { authHeaders, type ClientTls, RequestDeadline } from '../../delivery/http-options.ts';
import type { TooLargeError } from '../../delivery/request.ts';
import { DEFAULT_HOST, type ElasticsearchConfig } from './config.ts';
import type { BulkOp } from './encode.ts';

/**
 * The calls this output makes — `_bulk`, and the index template — through the official
 * `@elastic/elasticsearch` client, and what their answers mean for the buffer (the shared
 * rules of delivery/http-errors.ts, plus the cluster's own: a cluster block lifts by itself).
 * The client's own retries and timeouts are off (`maxRetries: 0`, no `requestTimeout`):
 * retrying and backoff belong to the sink driver, the time limit to RequestDeadline.
 *
 * OpenSearch speaks the same `_bulk` and `_index_template` APIs; what the Elasticsearch client
 * adds on top is a product check (`X-Elastic-Product` on every 2xx answer) and vendored media
 * types (`application/vnd.elasticsearch+json; compatible-with=9`). Both are set per flavor
 * in the transport below, so one client serves Elasticsearch 7, 8, 9 and OpenSearch.
 */

/** What one `_bulk` request came to, item by item (in request order). */
export type ItemOutcome =
  | { kind: 'ok'; duplicate: boolean }
  | { kind: 'retry'; reason: string }
  | { kind: 'reject'; reason: string };

export interface ItemReport {
  outcome: ItemOutcome;
  status: number;
  error: estypes.ErrorCause | undefined;
}

export class BulkClient {
  private readonly client: Client;
  private readonly requestTimeout: number;
  /** Named in every error and dead-letter reason: without credentials a URL might carry. */
  private readonly target: string;

  constructor(config: ElasticsearchConfig, tls: ClientTls | undefined) {
    this.client = new Client(clientOptions(config, tls));
    this.requestTimeout = config.request_timeout;
    this.target =
      config.cloud_id !== undefined
        ? 'Elastic Cloud'
        : (config.hosts ?? [DEFAULT_HOST]).map((h) => new URL(h).origin).join(', ');
  }

  /**
   * One `_bulk` request of `count` actions, all `op`, whose NDJSON `body` is sent as it is.
   * Resolves with one report per item, or with nothing when the cluster says no item failed
   * (`errors: false`, which fluent-plugin-elasticsearch relies on too). Throws TooLargeError
   * (413), HaltError (401, 403, 404, a server that is not Elasticsearch, TLS), RejectError
   * (other refusals of the request itself) or RetryableError (connection errors,
   * request_timeout, the write's signal, 429, 5xx; with the cluster's Retry-After).
   */
  async bulk(
    body: Buffer,
    count: number,
    op: BulkOp,
    signal: AbortSignal,
  ): Promise<ItemReport[] | undefined> {
    const deadline = new RequestDeadline(signal, this.requestTimeout);
    let response: estypes.BulkResponse;
    try {
      // The transport sends a Buffer bulk body untouched (client.bulk's typed `operations`
      // would have it serialize objects or join strings).
      response = await this.client.transport.request<estypes.BulkResponse>(
        { method: 'POST', path: '/_bulk', bulkBody: body },
        { signal: deadline.signal },
      );
    } catch (err) {
      throw this.classify(err, '_bulk', deadline);
    } finally {
      deadline.done();
    }
    const answers = Array.isArray(response?.items) ? response.items : [];
    if (answers.length !== count) {
      throw new RetryableError(`${this.target}: _bulk answered ${answers.length} items for ${count} actions`);
    }
    if (response.errors === false) return undefined;
    return answers.map((answer) => {
      const report = answer[op] ?? Object.values(answer)[0];
      if (!report || typeof report.status !== 'number') {
        return { outcome: { kind: 'retry', reason: 'item without a status' }, status: 0, error: undefined };
      }
      return { outcome: classifyItem(op, report), status: report.status, error: report.error };
    });
  }

  /** Installs the index template unless one of that name exists (or `overwrite`). Returns whether it wrote. */
  async installTemplate(
    name: string,
    body: unknown,
    overwrite: boolean,
    signal: AbortSignal,
  ): Promise<boolean> {
    const deadline = new RequestDeadline(signal, this.requestTimeout);
    try {
      const options = { signal: deadline.signal };
      if (!overwrite && (await this.client.indices.existsIndexTemplate({ name }, options))) return false;
      await this.client.transport.request(
        {
          method: 'PUT',
          path: `/_index_template/${encodeURIComponent(name)}`,
          body: body as Record<string, unknown>,
        },
        options,
      );
      return true;
    } catch (err) {
      throw this.classify(err, `index template ${name}`, deadline);
    } finally {
      deadline.done();
    }
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** A client error as the sink driver should see it. */
  private classify(err: unknown, what: string, deadline: RequestDeadline): WriteError | TooLargeError {
    const at = `${this.target}: ${what}`;
    if (err instanceof errors.ResponseError) {
      const status = err.statusCode ?? 0;
      const cause =
        describeCause(errorCause(err.body)) ?? (typeof err.body === 'string' ? err.body.slice(0, 200) : '');
      const detail = cause ? ` (${cause})` : '';
      const retryAfter = err.headers?.['retry-after'];
      // A cluster block (disk flood stage, a read-only index) is lifted by the cluster or its operator: retried.
      if (status === 403 && errorCause(err.body)?.type === 'cluster_block_exception') {
        return new RetryableError(`${at}: ${status}${detail}`, { retryAfterMs: parseRetryAfter(retryAfter) });
      }
      return (
        classifyStatus({ status, detail, retryAfter }, SINK(at)) ?? new RetryableError(`${at}: ${status}`)
      );
    }
    if (err instanceof errors.ProductNotSupportedError) {
      return new HaltError(
        `${at}: the server does not say it is Elasticsearch (no X-Elastic-Product header): set flavor: opensearch for OpenSearch, or product_check: false for Elasticsearch before 7.14`,
      );
    }
    if (err instanceof errors.ConfigurationError) return new HaltError(`${at}: ${err.message}`);
    // Timed out or aborted: the client says "Request aborted"; the deadline says which.
    return deadline.abandoned(at, err) ?? classifyNetworkError(err, at);
  }
}

const SINK = (at: string): HttpSink => ({
  at,
  name: 'the cluster',
  hints: {
    401: 'the cluster refused the credentials; check username/password or api_key',
    403: 'the user lacks a privilege (writing needs create_doc or index on the target indices)',
    404: 'is hosts the address of the cluster (and of its path prefix, behind a proxy)?',
  },
});

/**
 * One item of a `_bulk` answer. 2xx is done; so is 409 on `create` (the document is there
 * already: a retry, or a re-sent batch). 429 and 5xx are the cluster busy or failing over, and
 * a cluster block (e.g. disk flood stage) lifts too: retried. Other 4xx (mapping conflicts,
 * parse errors, a missing pipeline) will fail every time: rejected with the cluster's reason.
 */
export function classifyItem(op: BulkOp, item: estypes.BulkResponseItem): ItemOutcome {
  const { status } = item;
  if (status >= 200 && status < 300) return { kind: 'ok', duplicate: false };
  if (status === 409 && op === 'create') return { kind: 'ok', duplicate: true };
  const reason = itemReason(item.error) ?? `status ${status}`;
  if (status === 429 || status >= 500 || status === 408 || status === 409) return { kind: 'retry', reason };
  if (item.error?.type === 'cluster_block_exception') return { kind: 'retry', reason };
  return { kind: 'reject', reason };
}

/** `type: reason`, and the cause when there is one: `mapper_parsing_exception: failed … (caused by: …)`. */
export function describeCause(cause: estypes.ErrorCause | undefined): string | undefined {
  if (!cause?.type) return undefined;
  const head = cause.reason ? `${cause.type}: ${cause.reason}` : cause.type;
  const inner = cause.caused_by?.type
    ? ` (caused by ${cause.caused_by.type}${cause.caused_by.reason ? `: ${cause.caused_by.reason}` : ''})`
    : '';
  return head + inner;
}

/**
 * An item's error without what changes from document to document — quoted values, ids,
 * `[line:column]` positions — so the buffer files all records refused for one cause (one
 * field, one type) under one dead-letter reason. The records themselves keep the values, and
 * `trace_error` logs a first item's error in full.
 */
export function itemReason(cause: estypes.ErrorCause | undefined): string | undefined {
  if (!cause?.type) return undefined;
  return describeCause({
    ...cause,
    reason: stable(cause.reason),
    caused_by: cause.caused_by && { ...cause.caused_by, reason: stable(cause.caused_by.reason) },
  });
}

function stable(text: string | null | undefined): string | undefined {
  if (!text) return undefined;
  return text
    .replace(/^\[\d+:\d+\]\s*/, '')
    .replace(/^\[[^\]]*\]:\s*/, '')
    .replace(/(^|[\s([=:])'[^']*'/g, "$1'…'")
    .replace(/(^|[\s([=:])"[^"]*"/g, '$1"…"');
}

function errorCause(body: unknown): estypes.ErrorCause | undefined {
  const error = (body as { error?: unknown } | null | undefined)?.error;
  if (typeof error === 'string') return { type: error };
  return error !== null && typeof error === 'object' ? (error as estypes.ErrorCause) : undefined;
}

/**
 * The Elasticsearch client fixes the product check and the compatibility media types in the
 * transport it builds; a transport subclass is the client's own extension point to set them.
 */
function transportClass(productCheck: boolean, compatibility: number | undefined): typeof SniffingTransport {
  const vendoredHeaders =
    compatibility === undefined
      ? {}
      : {
          jsonContentType: `application/vnd.elasticsearch+json; compatible-with=${compatibility}`,
          ndjsonContentType: `application/vnd.elasticsearch+x-ndjson; compatible-with=${compatibility}`,
          accept: `application/vnd.elasticsearch+json; compatible-with=${compatibility},text/plain`,
        };
  return class EstuaryTransport extends SniffingTransport {
    constructor(opts: TransportOptions) {
      super({ ...opts, productCheck: productCheck ? 'Elasticsearch' : undefined, vendoredHeaders });
    }
  };
}

export function clientOptions(config: ElasticsearchConfig, tls: ClientTls | undefined): ClientOptions {
  const opensearch = config.flavor === 'opensearch';
  const auth =
    config.api_key !== undefined
      ? { apiKey: config.api_key }
      : config.username !== undefined
        ? { username: config.username, password: config.password ?? '' }
        : undefined;
  const sniff = config.sniffing && config.cloud_id === undefined;
  return {
    ...(config.cloud_id !== undefined
      ? { cloud: { id: config.cloud_id } }
      : { nodes: config.hosts ?? [DEFAULT_HOST] }),
    tls,
    headers: { ...config.headers, ...authHeaders(auth) },
    compression: config.compression === undefined ? undefined : config.compression === 'gzip',
    maxRetries: 0,
    sniffOnStart: sniff,
    sniffInterval: sniff ? 5 * 60_000 : false,
    sniffOnConnectionFault: sniff,
    enableMetaHeader: !opensearch,
    name: 'estuary',
    Transport: transportClass(config.product_check && !opensearch, config.compatibility_version),
  };
}
