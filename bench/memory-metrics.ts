import { parseSamples } from '../test/support/prom-text.ts';
import { peakAndSteady } from './proc.ts';

/** prom-client's default process metrics that say where Estuary's memory is. */
const NAMES = {
  heap: 'nodejs_heap_size_used_bytes',
  external: 'nodejs_external_memory_bytes',
  rss: 'process_resident_memory_bytes',
} as const;
type Kind = keyof typeof NAMES;

export type MemoryFigures = Record<Kind, { peakBytes: number; steadyBytes: number }>;

/** One answered scrape; `at` is performance.now() when it was sent. */
export interface MemoryPoint {
  at: number;
  heapBytes: number;
  externalBytes: number;
}

/**
 * Scrapes a SUT's /metrics every `intervalMs` for its V8 heap in use, its external memory
 * (Buffers, the msgpack and socket memory outside the heap) and its RSS as it reports it.
 * RSS alone cannot tell a heap that grows from buffers held outside it. With workers the
 * supervisor's exposition may hold several samples of a name: they are summed.
 */
export class MemoryMetricsSampler {
  private readonly url: string;
  private readonly samples: Record<Kind, number[]> = { heap: [], external: [], rss: [] };
  /** Every answered scrape in order, for a time series (the soak's). */
  readonly points: MemoryPoint[] = [];
  private readonly timer: NodeJS.Timeout;
  private pending: Promise<void> = Promise.resolve();

  /** `immediate`: scrape once now too, for a baseline before the load starts. */
  constructor(url: string, intervalMs: number, options: { immediate?: boolean } = {}) {
    this.url = url;
    if (options.immediate) this.pending = this.scrape();
    this.timer = setInterval(() => {
      this.pending = this.scrape();
    }, intervalMs);
  }

  /** One scrape now (after the drain, say), recorded like the timer's. */
  scrapeNow(): Promise<void> {
    this.pending = this.scrape();
    return this.pending;
  }

  private async scrape(): Promise<void> {
    const at = performance.now();
    let text: string;
    try {
      const res = await fetch(this.url, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) return;
      text = await res.text();
    } catch {
      // Not a server with Estuary's metrics (a --sut of another kind), or busy past the timeout.
      return;
    }
    const sums: Partial<Record<Kind, number>> = {};
    for (const s of parseSamples(text))
      for (const kind of Object.keys(NAMES) as Kind[])
        if (s.name === NAMES[kind]) sums[kind] = (sums[kind] ?? 0) + s.value;
    for (const kind of Object.keys(NAMES) as Kind[]) {
      const value = sums[kind];
      if (value !== undefined) this.samples[kind].push(value);
    }
    if (sums.heap !== undefined && sums.external !== undefined)
      this.points.push({ at, heapBytes: sums.heap, externalBytes: sums.external });
  }

  /** Peak and steady (median of the second half) of each so far; null when no scrape answered. */
  figures(): MemoryFigures | null {
    if (this.samples.heap.length === 0) return null;
    const figures = (kind: Kind) => {
      const { peak, steady } = peakAndSteady(this.samples[kind]);
      return { peakBytes: peak, steadyBytes: steady };
    };
    return { heap: figures('heap'), external: figures('external'), rss: figures('rss') };
  }

  async stop(): Promise<MemoryFigures | null> {
    clearInterval(this.timer);
    await this.pending;
    return this.figures();
  }
}
