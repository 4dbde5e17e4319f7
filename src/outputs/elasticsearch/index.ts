import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, RejectError, type RetryableError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output, Rejection, WriteResult } from '../output.ts';
import type { BulkClient, ItemReport } from './client.ts';
import { type ElasticsearchConfig, elasticsearchSchema } from './config.ts';
import { type BulkItem, type EncodeSettings, encodeBulk, encodeSettings, splitBulk } from './encode.ts';
import { TooLargeError } from './too-large.ts';

/** Elasticsearch and OpenSearch through `_bulk`, one chunk at a time. */
export const elasticsearchOutput = defineComponent({
  kind: 'output',
  type: 'elasticsearch',
  schema: elasticsearchSchema,
  create: (config, deps) => new ElasticsearchOutput(config, deps),
});

/**
 * What happened to a chunk's entries, request by request. The first request that fails as a
 * whole stops the write: the entries not yet sent share its fate, as the next request would.
 */
class Tally {
  delivered = 0;
  duplicates = 0;
  readonly retry: TaggedEntry[] = [];
  readonly reject: Rejection[] = [];
  /** Entries of the request that failed as a whole, and of every request after it. */
  readonly stopped: TaggedEntry[] = [];
  stoppedBy: RetryableError | RejectError | undefined;
  firstItemError: { item: BulkItem; report: ItemReport } | undefined;
  firstRetryReason: string | undefined;

  constructor(rejected: readonly Rejection[]) {
    this.reject.push(...rejected);
  }

  stop(items: readonly BulkItem[], error: RetryableError | RejectError): void {
    this.stoppedBy ??= error;
    for (const item of items) this.stopped.push(item.entry);
  }

  /**
   * Nothing got through and one error stopped everything: say it as that error, so the buffer
   * acts on it directly (and honours a Retry-After). Otherwise, per entry.
   */
  result(): WriteResult | undefined {
    const error = this.stoppedBy;
    if (error && this.delivered === 0 && this.retry.length === 0 && this.reject.length === 0) throw error;
    if (error instanceof RejectError) {
      for (const entry of this.stopped) this.reject.push({ entry, reason: error.message });
    } else {
      this.retry.push(...this.stopped);
    }
    if (this.retry.length === 0 && this.reject.length === 0) return undefined;
    return { retry: this.retry, reject: this.reject };
  }
}

interface Template {
  name: string;
  body: unknown;
  overwrite: boolean;
}

export class ElasticsearchOutput implements Output {
  readonly id: string;
  readonly type = 'elasticsearch';
  private readonly config: ElasticsearchConfig;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly settings: EncodeSettings;
  private client: BulkClient | undefined;
  private template: Template | undefined;
  /** Resolves once the template is in place; cleared after a failure so the next write tries again. */
  private templateReady: Promise<void> | undefined;

  constructor(config: ElasticsearchConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.settings = encodeSettings(config);
  }

  /**
   * Reads the TLS and template files and builds the client; contacts no node, so Estuary starts
   * (and buffers) while the cluster is down. The template is installed before the first write.
   */
  async start(): Promise<void> {
    await this.open();
  }

  async write(chunk: Chunk): Promise<WriteResult | undefined> {
    const client = await this.open();
    await this.ensureTemplate(client);
    const { items, rejected } = encodeBulk(chunk.entries(), this.settings);
    const tally = new Tally(rejected);
    const requests = splitBulk(items, this.config.bulk_max_bytes, this.config.bulk_max_actions);
    for (const [i, request] of requests.entries()) {
      if (!(await this.send(client, request, tally))) {
        tally.stop(requests.slice(i + 1).flat(), tally.stoppedBy!);
        break;
      }
    }
    this.report(chunk, tally);
    return tally.result();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.templateReady = undefined;
    await client?.close();
  }

  private async open(): Promise<BulkClient> {
    if (this.client) return this.client;
    // The client library is loaded only by configs that use it (~40 MB of memory).
    const { BulkClient } = await import('./client.ts');
    if (this.client) return this.client;
    const { template_name, template_file, template_overwrite } = this.config;
    if (template_name !== undefined && template_file !== undefined) {
      this.template = {
        name: template_name,
        body: readTemplate(resolve(this.configDir, template_file)),
        overwrite: template_overwrite,
      };
    }
    this.client = new BulkClient(this.config, this.configDir);
    return this.client;
  }

  private ensureTemplate(client: BulkClient): Promise<void> {
    const template = this.template;
    if (!template) return Promise.resolve();
    this.templateReady ??= client.installTemplate(template.name, template.body, template.overwrite).then(
      (written) => {
        this.logger.info(
          { template: template.name, written },
          written ? 'index template installed' : 'index template exists; left as is',
        );
      },
      (err: unknown) => {
        this.templateReady = undefined;
        throw err instanceof TooLargeError ? new RejectError(err.message) : err;
      },
    );
    return this.templateReady;
  }

  /**
   * One `_bulk` request; a 413 splits it in halves, sent in turn within this write. Returns
   * false when the request failed as a whole (the tally says with what).
   */
  private async send(client: BulkClient, items: readonly BulkItem[], tally: Tally): Promise<boolean> {
    let reports: ItemReport[];
    try {
      reports = await client.bulk(items);
    } catch (err) {
      if (!(err instanceof TooLargeError)) {
        tally.stop(items, err instanceof RejectError ? err : (err as RetryableError));
        return false;
      }
      if (items.length === 1) {
        // No retry can make one document smaller: it waits in the dead-letter queue for a
        // larger http.max_content_length (or a proxy's body limit) and a replay.
        tally.reject.push({
          entry: items[0]!.entry,
          reason: `${err.message}: one document of ${items[0]!.bytes} bytes is over the cluster's request size limit`,
        });
        return true;
      }
      const half = Math.ceil(items.length / 2);
      this.logger.debug({ actions: items.length }, '413 from the cluster: splitting the bulk request');
      if (!(await this.send(client, items.slice(0, half), tally))) {
        tally.stop(items.slice(half), tally.stoppedBy!);
        return false;
      }
      return this.send(client, items.slice(half), tally);
    }
    for (const [i, report] of reports.entries()) {
      const item = items[i]!;
      const { outcome } = report;
      if (outcome.kind === 'ok') {
        tally.delivered += 1;
        if (outcome.duplicate) tally.duplicates += 1;
        continue;
      }
      tally.firstItemError ??= { item, report };
      if (outcome.kind === 'retry') {
        tally.retry.push(item.entry);
        tally.firstRetryReason ??= outcome.reason;
      } else {
        tally.reject.push({ entry: item.entry, reason: outcome.reason });
      }
    }
    return true;
  }

  private report(chunk: Chunk, tally: Tally): void {
    if (tally.duplicates > 0) {
      this.logger.debug(
        { chunk_id: chunk.id, duplicates: tally.duplicates },
        'documents already indexed (409 on create)',
      );
    }
    if (tally.firstRetryReason !== undefined) {
      this.logger.warn(
        { chunk_id: chunk.id, retry: tally.retry.length, first_reason: tally.firstRetryReason },
        'cluster asked to retry some documents',
      );
    }
    const first = tally.firstItemError;
    if (first && this.config.trace_error) {
      this.logger.warn(
        {
          chunk_id: chunk.id,
          status: first.report.status,
          error: first.report.error,
          action: first.item.action,
          document: truncate(first.item.source, 2048),
        },
        'first failed bulk item (trace_error)',
      );
    }
  }
}

function readTemplate(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RejectError(`cannot read template_file ${path}: ${errorMessage(err)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new RejectError(`template_file ${path} is not JSON: ${errorMessage(err)}`);
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}
