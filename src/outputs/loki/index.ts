import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, RejectError, RetryableError } from '../../core/errors.ts';
import { getPath } from '../../core/record-path.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output, Rejection, WriteResult } from '../output.ts';
import type { LokiClient } from './client.ts';
import { isTenantId, type LokiConfig, lokiSchema, TENANT_RULE } from './config.ts';
import {
  encodeRequest,
  halve,
  type LineSettings,
  type LokiEntry,
  lokiEntry,
  type PushRequest,
  planRequests,
  requestEntries,
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

type Stop = RetryableError | RejectError;

/** What happened to a chunk's entries, request by request. */
class Tally {
  delivered = 0;
  readonly reject: Rejection[];
  /** Entries of requests that failed as a whole, with the error that stopped them. */
  readonly stopped: { entries: TaggedEntry[]; error: Stop }[] = [];
  /** Entries sent with label values demoted to structured metadata: counted once delivered. */
  readonly demoted: Map<TaggedEntry, string[]>;

  constructor(rejected: Rejection[], demoted: Map<TaggedEntry, string[]>) {
    this.reject = rejected;
    this.demoted = demoted;
  }

  /**
   * Nothing got through and nothing was refused: say it as the error itself, so the buffer
   * acts on it directly (and honours a Retry-After). Otherwise, per entry: what a retryable
   * error stopped is retried, what a fatal one stopped is rejected with its reason.
   */
  result(): WriteResult | undefined {
    const errors = this.stopped.map((s) => s.error);
    if (errors.length > 0 && this.delivered === 0 && this.reject.length === 0) {
      const retryable = errors.filter((e) => e instanceof RetryableError);
      if (retryable.length === errors.length) {
        const wait = Math.max(...retryable.map((e) => e.retryAfterMs ?? 0));
        const first = retryable[0]!;
        throw wait > 0 && first.retryAfterMs !== wait
          ? new RetryableError(first.message, { retryAfterMs: wait, cause: first })
          : first;
      }
      if (retryable.length === 0) throw errors[0]!;
    }
    const retry: TaggedEntry[] = [];
    for (const { entries, error } of this.stopped) {
      if (error instanceof RejectError)
        for (const entry of entries) this.reject.push({ entry, reason: error.message });
      else retry.push(...entries);
    }
    if (retry.length === 0 && this.reject.length === 0) return undefined;
    return { retry, reject: this.reject };
  }
}

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

  async write(chunk: Chunk): Promise<WriteResult | undefined> {
    const client = await this.open();
    const { entries, rejected, demoted } = this.prepare(chunk.entries());
    const tally = new Tally(rejected, demoted);
    const stoppedTenants = new Map<string | undefined, Stop>();
    for (const request of planRequests(entries, this.config.batch_size)) {
      const stop = stoppedTenants.get(request.tenant);
      if (stop) {
        // The tenant's earlier request failed as a whole: its next one would too. Other
        // tenants (another rate limit, other credentials) still get their turn.
        tally.stopped.push({ entries: requestEntries(request), error: stop });
        continue;
      }
      const error = await this.send(client, request, tally);
      if (error) stoppedTenants.set(request.tenant, error);
    }
    return tally.result();
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
    if (this.client) return this.client;
    const c = this.config;
    this.rules ??= {
      labels: c.labels,
      autoKubernetes: c.auto_kubernetes_labels,
      map: c.label_map_path === undefined ? [] : readLabelMap(resolve(this.configDir, c.label_map_path)),
      keys: c.label_keys,
      includeTag: c.include_tag,
    };
    this.client = new LokiClient(c, this.configDir);
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
      const { labels, dynamic, consumed } = extractLabels(entry, rules);
      const shaped = shapeRecord(entry.record, consumed, this.line);
      for (const name of dynamic) {
        const value = labels.get(name)!;
        if (this.guard.admit(name, value)) continue;
        labels.delete(name);
        shaped.metadata.push([name, value]);
        demoted.set(entry, [...(demoted.get(entry) ?? []), name]);
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
  private countDemoted(request: PushRequest, demoted: Map<TaggedEntry, string[]>): void {
    const counts = new Map<string, number>();
    for (const entry of requestEntries(request))
      for (const name of demoted.get(entry) ?? []) counts.set(name, (counts.get(name) ?? 0) + 1);
    for (const [label, n] of counts) this.metrics.lokiLabelsDemoted.inc({ plugin_id: this.id, label }, n);
  }

  /**
   * One push; a 413 halves it, sent in turn within this write. Returns the error that
   * stopped it (the tally holds its entries and those of its unsent halves), or undefined.
   */
  private async send(client: LokiClient, request: PushRequest, tally: Tally): Promise<Stop | undefined> {
    let outcome: Awaited<ReturnType<LokiClient['push']>>;
    try {
      outcome = await client.push(encodeRequest(request, this.config.encoding), request.tenant);
    } catch (err) {
      const error: Stop =
        err instanceof RetryableError || err instanceof RejectError
          ? err
          : new RetryableError(errorMessage(err), { cause: err });
      tally.stopped.push({ entries: requestEntries(request), error });
      return error;
    }
    if (outcome.kind === 'ok') {
      tally.delivered += request.count;
      if (tally.demoted.size > 0) this.countDemoted(request, tally.demoted);
      return undefined;
    }
    if (outcome.kind === 'reject') {
      for (const entry of requestEntries(request)) tally.reject.push({ entry, reason: outcome.reason });
      return undefined;
    }
    if (request.count === 1) {
      const entry = requestEntries(request)[0]!;
      tally.reject.push({
        entry,
        reason: `${outcome.reason}: one entry of ${request.bytes} bytes is over the limit`,
      });
      return undefined;
    }
    this.logger.debug({ entries: request.count, bytes: request.bytes }, '413 from Loki: splitting the push');
    const [first, second] = halve(request);
    const error = await this.send(client, first, tally);
    if (error) {
      tally.stopped.push({ entries: requestEntries(second), error });
      return error;
    }
    return this.send(client, second, tally);
  }
}

function readLabelMap(path: string): { name: string; path: readonly string[] }[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RejectError(`cannot read label_map_path ${path}: ${errorMessage(err)}`);
  }
  try {
    return parseLabelMap(JSON.parse(text));
  } catch (err) {
    throw new RejectError(`label_map_path ${path}: ${errorMessage(err)}`);
  }
}
