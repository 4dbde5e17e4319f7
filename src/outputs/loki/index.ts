import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { readClientTls } from '../../config/values.ts';
import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, HaltError } from '../../core/errors.ts';
import { getPath } from '../../core/record-path.ts';
import type { ClientTls } from '../../delivery/http-options.ts';
import { sendInRequests } from '../../delivery/request.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { encodeFailure } from '../format.ts';
import type { Chunk, Output, Rejection, WriteOptions, WriteResult } from '../output.ts';
import type { LokiClient } from './client.ts';
import { isTenantId, type LokiConfig, lokiSchema, TENANT_RULE } from './config.ts';
import {
  encodeRequest,
  type LineSettings,
  type LokiEntry,
  lokiEntry,
  pushLimits,
  pushOrder,
  pushRequest,
  shapeRecord,
} from './encode.ts';
import { CardinalityGuard, extractLabels, type LabelRules, labelValue, parseLabelMap } from './labels.ts';

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
  private readonly line: LineSettings;
  /** Label names already warned about (once each). */
  private readonly warned = new Set<string>();
  private rules: LabelRules | undefined;
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
    this.line = {
      lineFormat: config.line_format,
      dropSingleKey: config.drop_single_key,
      removeKeys: config.remove_keys,
      structuredMetadata: config.structured_metadata,
    };
  }

  /** Reads the label map and TLS files and builds the client; contacts nothing, so Estuary starts while Loki is down. */
  async start(): Promise<void> {
    await this.open();
  }

  async write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const client = await this.open();
    const { entries, rejected, demoted } = this.prepare(chunk.entries());
    return sendInRequests(
      pushOrder(entries),
      {
        ...pushLimits(this.config.batch_size),
        entry: (e) => e.entry,
        noun: 'entry',
        send: async (request, signal) => {
          await client.push(
            encodeRequest(pushRequest(request), this.config.encoding),
            request[0]!.tenant,
            signal,
          );
          if (demoted.size > 0) this.countDemoted(request, demoted);
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
    this.rules ??= {
      labels: c.labels,
      autoKubernetes: c.auto_kubernetes_labels,
      map: c.label_map_path === undefined ? [] : readLabelMap(resolve(this.configDir, c.label_map_path)),
      keys: c.label_keys,
      includeTag: c.include_tag,
    };
    this.client = new LokiClient(c, this.tls);
    return this.client;
  }

  /** Entries → what Loki gets: labels (through the cardinality guard), line, metadata, tenant. */
  private prepare(entries: readonly TaggedEntry[]): {
    entries: LokiEntry[];
    rejected: Rejection[];
    demoted: Map<TaggedEntry, string[]>;
  } {
    const rules = this.rules!;
    const out: LokiEntry[] = [];
    const rejected: Rejection[] = [];
    const demoted = new Map<TaggedEntry, string[]>();
    for (const entry of entries) {
      const tenant = this.tenantOf(entry);
      if (tenant !== undefined && !isTenantId(tenant)) {
        rejected.push({
          entry,
          reason: `tenant id ${JSON.stringify(tenant)} is not valid for Loki: ${TENANT_RULE}`,
        });
        continue;
      }
      let extracted: ReturnType<typeof extractLabels>;
      let shaped: ReturnType<typeof shapeRecord>;
      try {
        extracted = extractLabels(entry, rules);
        shaped = shapeRecord(entry.record, extracted.consumed, this.line);
      } catch (err) {
        // Pure encoding: a record that fails (too deep for the stack) fails on every try.
        rejected.push({ entry, reason: encodeFailure(err) });
        continue;
      }
      const { labels, dynamic } = extracted;
      for (const name of dynamic) {
        const value = labels.get(name)!;
        if (this.guard.admit(name, value)) continue;
        labels.delete(name);
        shaped.metadata.push([name, value]);
        const names = demoted.get(entry);
        if (names) names.push(name);
        else demoted.set(entry, [name]);
        this.warnDemoted(name);
      }
      if (labels.size === 0) {
        rejected.push({
          entry,
          reason: 'no labels: Loki needs at least one label per stream (set labels, e.g. job=fluent-bit)',
        });
        continue;
      }
      out.push(lokiEntry(entry, tenant, labels, shaped.line, shaped.metadata));
    }
    return { entries: out, rejected, demoted };
  }

  private tenantOf(entry: TaggedEntry): string | undefined {
    const key = this.config.tenant_id_key;
    const own = key === undefined ? undefined : labelValue(getPath(entry.record, key));
    return own ?? this.config.tenant_id;
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
  private countDemoted(request: readonly LokiEntry[], demoted: Map<TaggedEntry, string[]>): void {
    const counts = new Map<string, number>();
    for (const { entry } of request)
      for (const name of demoted.get(entry) ?? []) counts.set(name, (counts.get(name) ?? 0) + 1);
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
