/**
 * Recent chunk ids (with their tag) of one forward input, so a chunk re-sent because its ack
 * was lost is acked again but buffered once. Fluent Bit's chunk id is a hash of the payload,
 * so it is stable across re-sends; Fluentd's is a unique id per buffer chunk.
 *
 * Bounded twice: ids older than the window are forgotten, and past `maxEntries` the oldest
 * go first. A chunk still being emitted is "pending": a copy arriving meanwhile (on another
 * connection) waits for that outcome instead of buffering it a second time.
 */

export type DedupeState =
  | { state: 'new' }
  | { state: 'done' }
  /** Resolves true when the first copy was buffered, false when it failed (then try again). */
  | { state: 'pending'; settled: Promise<boolean> };

interface Slot {
  expires: number;
  pending?: { promise: Promise<boolean>; resolve: (ok: boolean) => void };
}

export class ChunkDedupe {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly slots = new Map<string, Slot>();

  constructor(windowMs: number, maxEntries = 65_536) {
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
  }

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  get size(): number {
    return this.slots.size;
  }

  /** Claims `key`: 'new' means the caller emits, then calls `done` or `fail`. */
  begin(key: string, now = Date.now()): DedupeState {
    this.prune(now);
    const slot = this.slots.get(key);
    if (slot && slot.expires > now) {
      if (slot.pending) return { state: 'pending', settled: slot.pending.promise };
      return { state: 'done' };
    }
    let resolve!: (ok: boolean) => void;
    const promise = new Promise<boolean>((r) => {
      resolve = r;
    });
    this.slots.delete(key);
    this.slots.set(key, { expires: now + this.windowMs, pending: { promise, resolve } });
    return { state: 'new' };
  }

  /** The chunk is buffered: remember it for the window, from now. */
  done(key: string, now = Date.now()): void {
    const slot = this.slots.get(key);
    this.slots.delete(key);
    this.slots.set(key, { expires: now + this.windowMs });
    slot?.pending?.resolve(true);
  }

  /** The chunk was not buffered: forget it, so a re-send is emitted. */
  fail(key: string): void {
    const slot = this.slots.get(key);
    this.slots.delete(key);
    slot?.pending?.resolve(false);
  }

  private prune(now: number): void {
    // Insertion order is expiry order (every update re-inserts), so stop at the first live one.
    for (const [key, slot] of this.slots) {
      if (slot.expires > now && this.slots.size < this.maxEntries) break;
      this.slots.delete(key);
      slot.pending?.resolve(false);
    }
  }
}
