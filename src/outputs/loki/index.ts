import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readClientTls } from '../../config/values.ts';
import { errorMessage, HaltError } from '../../core/errors.ts';
import type { ClientTls } from '../../delivery/http-options.ts';
import { sendInRequests } from '../../delivery/request.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import type { LokiClient } from './client.ts';
import { type LokiConfig, lokiSchema } from './config.ts';
import { decodeEntry, encodeRequest, type LokiEntry, pushLimits, pushOrder, pushRequest } from './encode.ts';
import { EntryEncoder } from './entries.ts';
import { CardinalityGuard, parseLabelMap } from './labels.ts';

/** Grafana Loki through its push API, one chunk at a time. */
export const lokiOutput = defineComponent({
  kind: 'output',
  type: 'loki',
  schema: lokiSchema,
  // Loki refuses entries older than a stream's newest by more than its window: a retried chunk must not be overtaken.
  bufferDefaults: { ordered: true },
  create: (config, deps) => new LokiOutput(config, deps),
});

export class LokiOutput implements Output {
  readonly id: string;
  readonly type = 'loki';
  private readonly config: LokiConfig;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly guard: CardinalityGuard;
  /** Label names already warned about (once each). */
  private readonly warned = new Set<string>();
  /** Built at start: the label map file is read then. */
  private encoder: EntryEncoder | undefined;
  /** Read once, at start (or the first write without one), and kept across stop and start. */
  private tls: ClientTls | undefined;
  private client: LokiClient | undefined;

  constructor(config: LokiConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.guard = new CardinalityGuard(config.max_label_values);
  }

  /** Reads the label map and TLS files and builds the client; contacts nothing, so Estuary starts while Loki is down. */
  async start(): Promise<void> {
    await this.open();
  }

  async write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const client = await this.open();
    const { entries, rejected } = this.encoder!.encode(chunk);
    return sendInRequests(
      pushOrder(entries),
      {
        ...pushLimits(this.config.batch_size),
        entry: decodeEntry,
        noun: 'entry',
        send: async (request, signal) => {
          await client.push(
            encodeRequest(pushRequest(request), this.config.encoding),
            request[0]!.tenant,
            signal,
          );
          this.countDemoted(request);
          return undefined;
        },
        onSplit: (request) =>
          this.logger.debug({ entries: request.length }, '413 from Loki: splitting the push'),
      },
      options.signal,
      rejected,
    );
  }

  async stop(): Promise<void> {
    this.client?.close();
    this.client = undefined;
  }

  private async open(): Promise<LokiClient> {
    if (this.client) return this.client;
    // Loaded only by configs that ship to Loki: an ESM import of node:http loads its client
    // side (undici, ~2 MB resident) at once.
    const { LokiClient } = await import('./client.ts');
    const c = this.config;
    this.tls ??= c.tls && readClientTls(c.tls, this.configDir);
    if (this.client) return this.client;
    this.encoder ??= this.newEncoder();
    this.client = new LokiClient(c, this.tls);
    return this.client;
  }

  private newEncoder(): EntryEncoder {
    const c = this.config;
    return new EntryEncoder(
      {
        line: {
          lineFormat: c.line_format,
          dropSingleKey: c.drop_single_key,
          removeKeys: c.remove_keys,
          structuredMetadata: c.structured_metadata,
        },
        rules: {
          labels: c.labels,
          autoKubernetes: c.auto_kubernetes_labels,
          map: c.label_map_path === undefined ? [] : readLabelMap(resolve(this.configDir, c.label_map_path)),
          keys: c.label_keys,
          includeTag: c.include_tag,
        },
        tenantKey: c.tenant_id_key,
        tenantId: c.tenant_id,
      },
      { admit: (name, value) => this.guard.admit(name, value), demoted: (name) => this.warnDemoted(name) },
    );
  }

  private warnDemoted(name: string): void {
    if (this.warned.has(name)) return;
    this.warned.add(name);
    this.logger.warn(
      { label: name, max_label_values: this.config.max_label_values },
      'label has more values than max_label_values in the last hour: new values go as structured metadata, not as new streams',
    );
  }

  /** `estuary_loki_labels_demoted_total`, for the entries Loki took (a retried chunk counts once). */
  private countDemoted(request: readonly LokiEntry[]): void {
    const counts = new Map<string, number>();
    for (const { demoted } of request) {
      if (demoted === undefined) continue;
      for (const name of demoted) counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    for (const [label, n] of counts) this.metrics.lokiLabelsDemoted.inc({ plugin_id: this.id, label }, n);
  }
}

function readLabelMap(path: string): { name: string; path: readonly string[] }[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new HaltError(`cannot read label_map_path ${path}: ${errorMessage(err)}`);
  }
  try {
    return parseLabelMap(JSON.parse(text));
  } catch (err) {
    throw new HaltError(`label_map_path ${path}: ${errorMessage(err)}`);
  }
}
