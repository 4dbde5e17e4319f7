import type { OutputBuffer, Permit } from './buffer/buffer.ts';
import { type Batch, decodeEntries, makeBatch } from './core/batch.ts';
import type { Entry } from './core/entry.ts';
import { BackpressureError } from './core/errors.ts';
import type { TagPattern } from './core/tag-pattern.ts';
import type { Filter } from './filters/filter.ts';
import type { EmitOptions } from './inputs/input.ts';
import { type Logger, rateLimited } from './logger.ts';
import type { Metrics } from './metrics/registry.ts';

export interface FilterRoute {
  match: TagPattern;
  filter: Filter;
}
export interface OutputRoute {
  match: TagPattern;
  buffer: OutputBuffer;
}

/** Tags seen in a busy Kubernetes cluster are many but not unbounded; past this the caches start over. */
const ROUTE_CACHE_LIMIT = 10_000;

/**
 * Filters whose `match` fits the tag, in config order, then every output whose `match`
 * fits. A batch with no filter to run is passed on still encoded.
 */
export class Pipeline {
  private readonly filters: readonly FilterRoute[];
  private readonly outputs: readonly OutputRoute[];
  private readonly metrics: Metrics;
  private readonly filterCache = new Map<string, Filter[]>();
  private readonly outputCache = new Map<string, OutputBuffer[]>();
  private readonly warnUnrouted: (tag: string) => void;

  constructor(
    filters: readonly FilterRoute[],
    outputs: readonly OutputRoute[],
    metrics: Metrics,
    logger: Logger,
  ) {
    this.filters = filters;
    this.outputs = outputs;
    this.metrics = metrics;
    this.warnUnrouted = rateLimited(60_000, (suppressed, tag: string) =>
      logger.warn({ tag, suppressed }, 'no output matches this tag; records dropped'),
    );
  }

  /** Resolves once the batch is staged in every routed buffer: the moment an input may ack. */
  readonly emit = async (batch: Batch, options: EmitOptions): Promise<void> => {
    const filtered = this.applyFilters(batch);
    if (filtered.count === 0) return;
    const buffers = this.routesFor(batch.tag);
    if (buffers.length === 0) {
      this.metrics.recordsUnrouted.inc(filtered.count);
      this.warnUnrouted(batch.tag);
      return;
    }
    // Room first in every buffer, then stage in all: a refusal leaves no partial copy behind.
    const permits = await reserveAll(buffers, filtered.bytes, options);
    await Promise.all(buffers.map((b, i) => b.stage(filtered, permits[i]!)));
  };

  private applyFilters(batch: Batch): Batch {
    const filters = cached(this.filterCache, batch.tag, () =>
      this.filters.filter((f) => f.match.matches(batch.tag)).map((f) => f.filter),
    );
    if (filters.length === 0) return batch;
    const kept: Entry[] = [];
    for (const entry of decodeEntries(batch.payload)) {
      let current: Entry | null = entry;
      for (const f of filters) {
        current = f.apply(current, batch.tag);
        if (current === null) break;
      }
      if (current) kept.push(current);
    }
    return makeBatch(batch.tag, kept);
  }

  private routesFor(tag: string): OutputBuffer[] {
    return cached(this.outputCache, tag, () =>
      this.outputs.filter((o) => o.match.matches(tag)).map((o) => o.buffer),
    );
  }
}

/**
 * A permit from every buffer, or none. One buffer: its own wait. Several: a sender never
 * holds room in one while it waits for another (a full output would fill the others with
 * reservations and stall tags routed only to them); it waits for room where there was none,
 * lets it go, and tries them all again.
 */
async function reserveAll(buffers: OutputBuffer[], bytes: number, options: EmitOptions): Promise<Permit[]> {
  if (buffers.length === 1) return [await buffers[0]!.reserve(bytes, options)];
  for (;;) {
    const tried = await Promise.allSettled(buffers.map((b) => b.reserve(bytes, { wait: false })));
    const refused = tried.findIndex((p) => p.status === 'rejected');
    if (refused < 0) return tried.map((p) => (p as PromiseFulfilledResult<Permit>).value);
    for (const p of tried) if (p.status === 'fulfilled') p.value.release();
    const reason = (tried[refused] as PromiseRejectedResult).reason;
    if (!options.wait || !(reason instanceof BackpressureError)) throw reason;
    (await buffers[refused]!.reserve(bytes, options)).release();
  }
}

function cached<T>(cache: Map<string, T>, key: string, compute: () => T): T {
  let value = cache.get(key);
  if (value === undefined) {
    if (cache.size >= ROUTE_CACHE_LIMIT) cache.clear();
    value = compute();
    cache.set(key, value);
  }
  return value;
}
