import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readClientTls } from '../../config/values.ts';
import { errorMessage, HaltError } from '../../core/errors.ts';
import type { ClientTls } from '../../delivery/http-options.ts';
import { type ItemAnswer, sendInRequests, TooLargeError } from '../../delivery/request.ts';
import type { Logger } from '../../logger.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import { type BulkBody, BulkEncoder } from './bulk-encoder.ts';
import type { BulkClient, ItemReport } from './client.ts';
import { type ElasticsearchConfig, elasticsearchSchema } from './config.ts';
import { type BulkOp, bulkOp, encodeSettings } from './encode.ts';

/** Elasticsearch and OpenSearch through `_bulk`, one chunk at a time. */
export const elasticsearchOutput = defineComponent({
  kind: 'output',
  type: 'elasticsearch',
  schema: elasticsearchSchema,
  create: (config, deps) => new ElasticsearchOutput(config, deps),
});

/** What a write's item answers came to, for its log lines (the request layer keeps the entries). */
class BulkReport {
  duplicates = 0;
  retries = 0;
  firstRetryReason: string | undefined;
  /** The item (its number in the chunk's body) and the cluster's answer. */
  firstItemError: { item: number; report: ItemReport } | undefined;

  /**
   * Notes a request's reports (none: every item went through) and hands their outcomes to the
   * request layer: nothing when every item went through, so no entry is decoded for it.
   */
  add(items: readonly number[], reports: readonly ItemReport[] | undefined): ItemAnswer[] | undefined {
    if (reports === undefined) return undefined;
    let failed = false;
    for (const [i, report] of reports.entries()) {
      const { outcome } = report;
      if (outcome.kind === 'ok') {
        if (outcome.duplicate) this.duplicates += 1;
        continue;
      }
      failed = true;
      this.firstItemError ??= { item: items[i]!, report };
      if (outcome.kind === 'retry') {
        this.retries += 1;
        this.firstRetryReason ??= outcome.reason;
      }
    }
    return failed ? reports.map((r) => r.outcome) : undefined;
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
  private readonly encoder: BulkEncoder;
  private readonly op: BulkOp;
  private client: BulkClient | undefined;
  /** Read once, at start (or the first write without one), and kept across stop and start. */
  private tls: ClientTls | undefined;
  private template: Template | undefined;
  /** Resolves once the template is in place; cleared after a failure so the next write tries again. */
  private templateReady: Promise<void> | undefined;

  constructor(config: ElasticsearchConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    const settings = encodeSettings(config);
    this.encoder = new BulkEncoder(settings);
    this.op = bulkOp(settings);
  }

  /**
   * Reads the TLS and template files and builds the client; contacts no node, so Estuary starts
   * (and buffers) while the cluster is down. The template is installed before the first write.
   */
  async start(): Promise<void> {
    await this.open();
  }

  async write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const client = await this.open();
    await this.ensureTemplate(client, options.signal);
    const bulk = this.encoder.encode(chunk.batches, bodySizeHint(chunk));
    const report = new BulkReport();
    try {
      return await sendInRequests(
        bulk.items(),
        {
          maxBytes: this.config.bulk_max_bytes,
          maxCount: this.config.bulk_max_actions,
          bytes: (item) => bulk.bytes(item),
          entry: (item) => bulk.entry(item),
          noun: 'document',
          send: async (request, signal) =>
            report.add(request, await client.bulk(bulk.slice(request), request.length, this.op, signal)),
          onSplit: (request) =>
            this.logger.debug(
              { actions: request.length },
              '413 from the cluster: splitting the bulk request',
            ),
        },
        options.signal,
        bulk.rejected,
      );
    } finally {
      this.report(chunk, bulk, report);
    }
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
    this.tls ??= this.config.tls && readClientTls(this.config.tls, this.configDir);
    if (this.client) return this.client;
    const { template_name, template_file, template_overwrite } = this.config;
    if (template_name !== undefined && template_file !== undefined) {
      this.template = {
        name: template_name,
        body: readTemplate(resolve(this.configDir, template_file)),
        overwrite: template_overwrite,
      };
    }
    this.client = new BulkClient(this.config, this.tls);
    return this.client;
  }

  /** Writes wait for the template; the first of them sends it, under its own signal. */
  private ensureTemplate(client: BulkClient, signal: AbortSignal): Promise<void> {
    const template = this.template;
    if (!template) return Promise.resolve();
    this.templateReady ??= client
      .installTemplate(template.name, template.body, template.overwrite, signal)
      .then(
        (written) => {
          this.logger.info(
            { template: template.name, written },
            written ? 'index template installed' : 'index template exists; left as is',
          );
        },
        (err: unknown) => {
          this.templateReady = undefined;
          // A template too large for the cluster is the configuration's fault, not the records'.
          throw err instanceof TooLargeError ? new HaltError(err.message) : err;
        },
      );
    return this.templateReady;
  }

  private report(chunk: Chunk, bulk: BulkBody, report: BulkReport): void {
    if (report.duplicates > 0) {
      this.logger.debug(
        { chunk_id: chunk.id, duplicates: report.duplicates },
        'documents already indexed (409 on create)',
      );
    }
    if (report.firstRetryReason !== undefined) {
      this.logger.warn(
        { chunk_id: chunk.id, retry: report.retries, first_reason: report.firstRetryReason },
        'cluster asked to retry some documents',
      );
    }
    const first = report.firstItemError;
    if (first && this.config.trace_error) {
      const { action, source } = bulk.lines(first.item);
      this.logger.warn(
        {
          chunk_id: chunk.id,
          status: first.report.status,
          error: first.report.error,
          action,
          document: truncate(source, 2048),
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
    throw new HaltError(`cannot read template_file ${path}: ${errorMessage(err)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HaltError(`template_file ${path} is not JSON: ${errorMessage(err)}`);
  }
}

/**
 * Room for the whole body at once: the records' JSON runs about a fifth longer than their
 * msgpack, and each adds an action line and a time field.
 */
function bodySizeHint(chunk: Chunk): number {
  return Math.ceil(chunk.bytes * 1.25) + chunk.count * 160 + 1024;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}
