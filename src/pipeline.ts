import type { OutputBuffer, Permit } from './buffer/buffer.ts';
import { type Batch, decodeEntries, makeBatch } from './core/batch.ts';
import type { Entry, TaggedEntry } from './core/entry.ts';
import { BackpressureError } from './core/errors.ts';
import type { TagPattern } from './core/tag-pattern.ts';
import type { Emission, Filter } from './filters/filter.ts';
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
 * How many times one entry may be re-tagged on its way through: past it the entry is taken
 * for a routing loop (rules that re-tag into each other) and dropped, counted and logged —
 * as Fluent Bit's rewrite_tag, whose emitted records go through the filters again.
 */
export const MAX_RETAGS = 8;

/** Entries one input entry may become through every filter (copies kept while re-tagging multiply). */
export const MAX_EMISSIONS = 64;

/** A tag a filter makes longer than this stays the old tag: routes and caches are keyed by tags. */
export const MAX_TAG_LENGTH = 1024;

/** What a batch became: entries to buffer, and entries to dead-letter, by tag. */
class Routed {
  readonly kept = new Map<string, Entry[]>();
  readonly dead = new Map<string, { tag: string; reason: string; entries: TaggedEntry[] }>();

  keep(tag: string, entry: Entry): void {
    const list = this.kept.get(tag);
    if (list) list.push(entry);
    else this.kept.set(tag, [entry]);
  }

  reject(tag: string, entry: Entry, reason: string): void {
    const key = `${tag}\u0000${reason}`;
    const group = this.dead.get(key);
    if (group) group.entries.push({ ...entry, tag });
    else this.dead.set(key, { tag, reason, entries: [{ ...entry, tag }] });
  }
}

/** What one input entry has become so far. */
interface Tally {
  /** Re-tags on the current path (the loop guard). */
  retags: number;
  /** Emissions of filters, over every path. */
  emitted: number;
}

const newTally = (): Tally => ({ retags: 0, emitted: 0 });

/** A buffer and the batch it is to stage. */
interface Placement {
  buffer: OutputBuffer;
  batch: Batch;
}

/**
 * Filters whose `match` fits the tag, in config order, then every output whose `match`
 * fits. A batch with no filter to run is passed on still encoded. An entry a filter re-tags
 * starts again from the first filter its new tag matches.
 */
export class Pipeline {
  private readonly filters: readonly FilterRoute[];
  private readonly outputs: readonly OutputRoute[];
  private readonly metrics: Metrics;
  private readonly filterCache = new Map<string, Filter[]>();
  private readonly outputCache = new Map<string, OutputBuffer[]>();
  private readonly warnUnrouted: (tag: string) => void;
  private readonly warnLoop: (filter: Filter, tag: string) => void;
  private readonly warnFilterError: (filter: Filter, err: unknown) => void;

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
    this.warnLoop = rateLimited(60_000, (suppressed, filter: Filter, tag: string) =>
      logger.warn(
        { plugin_id: filter.id, tag, suppressed, max_retags: MAX_RETAGS },
        'record re-tagged too many times (a routing loop?); dropped',
      ),
    );
    this.warnFilterError = rateLimited(60_000, (suppressed, filter: Filter, err: unknown) =>
      logger.warn(
        { plugin_id: filter.id, err, suppressed },
        'filter failed on a record; it went on unchanged',
      ),
    );
  }

  /** Starts the filters that hold entries, giving each the way to hand them on. */
  start(): void {
    for (const { filter } of this.filters)
      filter.start?.((tag, emissions) => this.release(filter, tag, emissions));
  }

  /** Makes every filter hand on what it holds (before the buffers stop). */
  async stop(): Promise<void> {
    await Promise.allSettled(this.filters.map(({ filter }) => filter.stop?.()));
  }

  /** Resolves once the batch is staged in every routed buffer: the moment an input may ack. */
  readonly emit = async (batch: Batch, options: EmitOptions): Promise<void> => {
    if (this.chainFor(batch.tag).length === 0) {
      await this.place([batch], options);
      return;
    }
    const out = new Routed();
    for (const entry of decodeEntries(batch.payload)) this.run(entry, batch.tag, 0, newTally(), out);
    await this.stage(out, options);
  };

  /** Entries a filter held, on through the filters after it; waits for room as a forward sender does. */
  private async release(filter: Filter, tag: string, emissions: readonly Emission[]): Promise<void> {
    const out = new Routed();
    const at = this.chainFor(tag).indexOf(filter);
    const next = at < 0 ? Number.POSITIVE_INFINITY : at + 1;
    // Each released entry is one of its own (a joined event): the copy cap counts per entry,
    // not per release (a stop hands on every open group of a tag at once).
    for (const emission of emissions) this.fan([emission], tag, next, newTally(), filter, out);
    await this.stage(out, { wait: true });
  }

  /** `entry` of `tag` through the filters of its chain from `from`; what comes out is added to `out`. */
  private run(entry: Entry, tag: string, from: number, tally: Tally, out: Routed): void {
    const chain = this.chainFor(tag);
    let current = entry;
    for (let i = from; i < chain.length; i++) {
      const filter = chain[i]!;
      let result: ReturnType<Filter['apply']>;
      try {
        result = filter.apply(current, tag);
      } catch (err) {
        // One record a filter cannot take must not fail its whole batch (the sender would
        // re-send it for ever): it goes on as it was, counted and logged.
        this.metrics.filterErrors.inc({ plugin_id: filter.id, type: filter.type });
        this.warnFilterError(filter, err);
        continue;
      }
      if (result === null) return;
      if (Array.isArray(result)) {
        this.fan(result, tag, i + 1, tally, filter, out);
        return;
      }
      current = result as Entry;
    }
    out.keep(tag, current);
  }

  /**
   * What `filter` made of an entry of `tag`: the same tag goes on from `next`, another starts
   * over. A new tag that is empty or over MAX_TAG_LENGTH leaves the entry under its own tag.
   */
  private fan(
    emissions: readonly Emission[],
    tag: string,
    next: number,
    tally: Tally,
    filter: Filter,
    out: Routed,
  ): void {
    for (const { entry, tag: to, reject } of emissions) {
      if (reject !== undefined) {
        out.reject(to || tag, entry, reject);
        continue;
      }
      // Filters that each keep the original and add a re-tagged copy multiply an entry
      // geometrically: past MAX_EMISSIONS copies of one input entry, the rest are a loop too.
      if (++tally.emitted > MAX_EMISSIONS) {
        this.loopDrop(filter, to ?? tag);
        continue;
      }
      if (to === undefined || to === tag || to === '') this.run(entry, tag, next, tally, out);
      else if (to.length > MAX_TAG_LENGTH) {
        this.metrics.filterErrors.inc({ plugin_id: filter.id, type: filter.type });
        this.warnFilterError(
          filter,
          new Error(`new tag of ${to.length} characters, over ${MAX_TAG_LENGTH}: kept under ${tag}`),
        );
        this.run(entry, tag, next, tally, out);
      } else if (tally.retags < MAX_RETAGS) {
        tally.retags += 1;
        this.run(entry, to, 0, tally, out);
        tally.retags -= 1;
      } else this.loopDrop(filter, to);
    }
  }

  private loopDrop(filter: Filter, tag: string): void {
    this.metrics.recordsDropped.inc({ plugin_id: filter.id, type: filter.type, reason: 'retag_loop' });
    this.warnLoop(filter, tag);
  }

  /** What filters made of a batch: buffered, then the refused entries dead-lettered. */
  private async stage(out: Routed, options: EmitOptions): Promise<void> {
    await this.place(
      [...out.kept].map(([tag, entries]) => makeBatch(tag, entries)),
      options,
    );
    const dead: Promise<void>[] = [];
    for (const { tag, reason, entries } of out.dead.values()) {
      const buffers = this.routesFor(tag);
      if (buffers.length === 0) {
        this.metrics.recordsUnrouted.inc(entries.length);
        this.warnUnrouted(tag);
      }
      for (const buffer of buffers) dead.push(buffer.deadLetterNow(entries, reason));
    }
    await Promise.all(dead);
  }

  /** Room for every batch in each buffer it routes to, then staged in all of them. */
  private async place(batches: readonly Batch[], options: EmitOptions): Promise<void> {
    const placements: Placement[] = [];
    for (const batch of batches) {
      if (batch.count === 0) continue;
      const buffers = this.routesFor(batch.tag);
      if (buffers.length === 0) {
        this.metrics.recordsUnrouted.inc(batch.count);
        this.warnUnrouted(batch.tag);
        continue;
      }
      for (const buffer of buffers) placements.push({ buffer, batch });
    }
    if (placements.length === 0) return;
    // Room first in every buffer, then stage in all: a refusal leaves no partial copy behind.
    const permits = await reserveAll(placements, options);
    await Promise.all(placements.map((p, i) => p.buffer.stage(p.batch, permits[i]!)));
  }

  private chainFor(tag: string): Filter[] {
    return cached(this.filterCache, tag, () =>
      this.filters.filter((f) => f.match.matches(tag)).map((f) => f.filter),
    );
  }

  private routesFor(tag: string): OutputBuffer[] {
    return cached(this.outputCache, tag, () =>
      this.outputs.filter((o) => o.match.matches(tag)).map((o) => o.buffer),
    );
  }
}

/**
 * A permit for every placement, or none. One: its own wait. Several: a sender never holds
 * room in one buffer while it waits for another (a full output would fill the others with
 * reservations and stall tags routed only to them); it waits for room where there was none,
 * lets it go, and tries them all again.
 */
async function reserveAll(placements: readonly Placement[], options: EmitOptions): Promise<Permit[]> {
  if (placements.length === 1) {
    const [{ buffer, batch }] = placements as [Placement];
    return [await buffer.reserve(batch.bytes, options)];
  }
  for (;;) {
    const tried = await Promise.allSettled(
      placements.map((p) => p.buffer.reserve(p.batch.bytes, { wait: false })),
    );
    const refused = tried.findIndex((p) => p.status === 'rejected');
    if (refused < 0) return tried.map((p) => (p as PromiseFulfilledResult<Permit>).value);
    for (const p of tried) if (p.status === 'fulfilled') p.value.release();
    const reason = (tried[refused] as PromiseRejectedResult).reason;
    if (!options.wait || !(reason instanceof BackpressureError)) throw reason;
    const { buffer, batch } = placements[refused]!;
    (await buffer.reserve(batch.bytes, options)).release();
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
