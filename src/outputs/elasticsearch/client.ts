import {
  Client,
  type ClientOptions,
  errors,
  type estypes,
  SniffingTransport,
  type TransportOptions,
} from '@elastic/elasticsearch';
import { readClientTls } from '../../config/values.ts';
import { errorMessage, parseRetryAfter, RejectError, RetryableError } from '../../core/errors.ts';
import { DEFAULT_HOST, type ElasticsearchConfig } from './config.ts';
import type { BulkItem, BulkOp } from './encode.ts';
import { TooLargeError } from './too-large.ts';

/**
 * The calls this output makes — `_bulk`, and the index template — through the official
 * `@elastic/elasticsearch` client, and what their answers mean for the buffer. The client's
 * own retries are off (`maxRetries: 0`): retrying, backoff and Retry-After belong to the buffer.
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

/** The cluster refused the request for its size (413): the caller splits it. */

export class BulkClient {
  private readonly client: Client;
  private readonly target: string;
  /** Per request: given to the client as a whole, undici's coarse timers fire up to a second late. */
  private readonly requestTimeout: number;

  constructor(config: ElasticsearchConfig, configDir: string) {
    this.client = new Client(clientOptions(config, configDir));
    this.requestTimeout = config.request_timeout;
    // Named in every error and dead-letter reason: without credentials a URL might carry.
    this.target =
      config.cloud_id !== undefined
        ? 'Elastic Cloud'
        : (config.hosts ?? [DEFAULT_HOST]).map((h) => new URL(h).origin).join(', ');
  }

  /**
   * One `_bulk` request. Resolves with one report per item; throws TooLargeError (413),
   * RejectError (401, 403, other refusals of the request itself) or RetryableError
   * (connection errors, timeouts, 429, 5xx; with the cluster's Retry-After).
   */
  async bulk(items: readonly BulkItem[]): Promise<ItemReport[]> {
    let body: estypes.BulkResponse;
    try {
      const operations: string[] = [];
      for (const item of items) operations.push(item.action, item.source);
      body = await this.client.bulk({ operations }, { requestTimeout: this.requestTimeout });
    } catch (err) {
      throw this.classify(err, '_bulk');
    }
    const answers = Array.isArray(body?.items) ? body.items : [];
    if (answers.length !== items.length) {
      throw new RetryableError(
        `${this.target}: _bulk answered ${answers.length} items for ${items.length} actions`,
      );
    }
    return items.map((item, i) => {
      const answer = answers[i]!;
      const report = answer[item.op] ?? Object.values(answer)[0];
      if (!report || typeof report.status !== 'number') {
        return { outcome: { kind: 'retry', reason: 'item without a status' }, status: 0, error: undefined };
      }
      return { outcome: classifyItem(item.op, report), status: report.status, error: report.error };
    });
  }

  /** Installs the index template unless one of that name exists (or `overwrite`). Returns whether it wrote. */
  async installTemplate(name: string, body: unknown, overwrite: boolean): Promise<boolean> {
    try {
      const options = { requestTimeout: this.requestTimeout };
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
      throw this.classify(err, `index template ${name}`);
    }
  }

  close(): Promise<void> {
    return this.client.close();
  }

  /** A client error as the buffer should see it. */
  classify(err: unknown, what: string): RetryableError | RejectError | TooLargeError {
    const at = `${this.target}: ${what}`;
    if (err instanceof errors.ResponseError) {
      const status = err.statusCode ?? 0;
      const cause =
        describeCause(errorCause(err.body)) ?? (typeof err.body === 'string' ? err.body.slice(0, 200) : '');
      const said = cause ? ` (${cause})` : '';
      const retryAfterMs = parseRetryAfter(err.headers?.['retry-after']);
      if (status === 413) return new TooLargeError(`${at}: 413 request entity too large${said}`);
      if (status === 401) {
        return new RejectError(
          `${at}: 401 unauthorized${said}: the cluster refused the credentials; check username/password or api_key`,
        );
      }
      if (status === 403 && errorCause(err.body)?.type !== 'cluster_block_exception') {
        return new RejectError(
          `${at}: 403 forbidden${said}: the user lacks a privilege (writing needs create_doc or index on the target indices)`,
        );
      }
      if (status === 403 || status === 408 || status === 429 || status >= 500) {
        return new RetryableError(`${at}: ${status}${said}`, { retryAfterMs, cause: err });
      }
      return new RejectError(`${at}: the cluster refused the request: ${status}${said}`, { cause: err });
    }
    if (err instanceof errors.ProductNotSupportedError) {
      return new RejectError(
        `${at}: the server does not say it is Elasticsearch (no X-Elastic-Product header): set flavor: opensearch for OpenSearch, or product_check: false for Elasticsearch before 7.14`,
      );
    }
    if (err instanceof errors.ConfigurationError) return new RejectError(`${at}: ${err.message}`);
    if (err instanceof errors.TimeoutError)
      return new RetryableError(`${at}: no answer within request_timeout (${this.requestTimeout}ms)`, {
        cause: err,
      });
    // Connection refused or reset, no living node, an unreadable answer: all may pass next time.
    return new RetryableError(`${at}: ${errorMessage(err)}`, { cause: err });
  }
}

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

export function clientOptions(config: ElasticsearchConfig, configDir: string): ClientOptions {
  const opensearch = config.flavor === 'opensearch';
  const tls = config.tls && readClientTls(config.tls, configDir);
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
    auth,
    tls,
    headers: config.headers,
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
