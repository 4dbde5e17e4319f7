/**
 * Recent chunk ids (with their tag) of one forward input, so a chunk re-sent because its ack
 * was lost is acked again but buffered once. Fluent Bit's chunk id is a hash of the payload,
 * so it is stable across re-sends; Fluentd's is a unique id per buffer chunk.
 *
 * Bounded three ways: ids older than the window are forgotten, and past `maxEntries` ids or
 * `maxBytes` (each id's bytes plus a fixed per-id cost) the oldest go first. A chunk still being emitted is "pending": a copy arriving meanwhile (on another
 * connection) waits for that outcome instead of buffering it a second time.
 */

export type DedupeState =
  | { state: 'new' }
  | { state: 'done' }
  /** Resolves true when the first copy was buffered, false when it failed (then try again). */
  | { state: 'pending'; settled: Promise<boolean> };

interface Slot {
  readonly key: string;
  expires: number;
  pending: boolean;
  /** What copies arriving meanwhile wait on; made on first need, as most chunks are never re-sent. */
  waiter?: { promise: Promise<boolean>; resolve: (ok: boolean) => void };
}

/** What one remembered id costs besides its key's chars: the slot, its Map entry and its place in `order`. */
export const SLOT_OVERHEAD = 128;

const NEW: DedupeState = { state: 'new' };
const DONE: DedupeState = { state: 'done' };

export class ChunkDedupe {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  /** What the ids held cost, by SLOT_OVERHEAD + key length. */
  private held = 0;
  private readonly slots = new Map<string, Slot>();
  /**
   * Every slot set, oldest first; one whose key maps to another slot by now is skipped when it
   * comes up. Expiry walks this, not the Map: a Map's deleted first entries stay as holes that
   * every iteration from its start walks again, so with the Map full (a chunk per record in
   * Message mode) pruning the oldest cost time in proportion to the Map, on every chunk.
   * `done` renews a slot in place, so this is expiry order only nearly (by emit durations):
   * a renewed slot at the front holds back the expiry of the few behind it, no more.
   */
  private order: (Slot | undefined)[] = [];
  private head = 0;

  constructor(windowMs: number, maxEntries = 65_536, maxBytes = 16 * 1024 * 1024) {
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
  }

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  get size(): number {
    return this.slots.size;
  }

  /** What the ids held cost, as counted against `maxBytes`. */
  get bytes(): number {
    return this.held;
  }

  /** Claims `key`: 'new' means the caller emits, then calls `done` or `fail`. */
  begin(key: string, now = Date.now()): DedupeState {
    this.prune(now);
    const slot = this.slots.get(key);
    if (slot && slot.expires > now) {
      if (!slot.pending) return DONE;
      if (!slot.waiter) {
        let resolve!: (ok: boolean) => void;
        const promise = new Promise<boolean>((r) => {
          resolve = r;
        });
        slot.waiter = { promise, resolve };
      }
      return { state: 'pending', settled: slot.waiter.promise };
    }
    // Expired yet still here (a clock step back): whoever waits on it retries.
    slot?.waiter?.resolve(false);
    this.set({ key, expires: now + this.windowMs, pending: true });
    return NEW;
  }

  /** The chunk is buffered: remember it for the window, from now. */
  done(key: string, now = Date.now()): void {
    const slot = this.slots.get(key);
    if (slot === undefined) {
      // Pushed out (maxEntries) while it was emitted: known again, as the newest.
      this.set({ key, expires: now + this.windowMs, pending: false });
      return;
    }
    slot.expires = now + this.windowMs;
    slot.pending = false;
    const waiter = slot.waiter;
    slot.waiter = undefined;
    waiter?.resolve(true);
  }

  /** The chunk was not buffered: forget it, so a re-send is emitted. */
  fail(key: string): void {
    const slot = this.slots.get(key);
    this.remove(key);
    slot?.waiter?.resolve(false);
  }

  private set(slot: Slot): void {
    this.remove(slot.key);
    this.slots.set(slot.key, slot);
    this.held += cost(slot.key);
    this.order.push(slot);
  }

  private remove(key: string): void {
    if (this.slots.delete(key)) this.held -= cost(key);
  }

  private prune(now: number): void {
    const { slots } = this;
    let order = this.order;
    // `order` is expiry order (every update appends), so stop at the first live one.
    while (this.head < order.length) {
      const slot = order[this.head]!;
      const current = slots.get(slot.key) === slot;
      if (current && slot.expires > now && slots.size < this.maxEntries && this.held < this.maxBytes) break;
      order[this.head++] = undefined;
      if (!current) continue;
      this.remove(slot.key);
      slot.waiter?.resolve(false);
    }
    if (order.length - this.head > 2 * this.maxEntries) {
      // Superseded slots behind a live one (chunks that failed, say) pile up: keep the current only.
      order = order.slice(this.head).filter((s) => s !== undefined && slots.get(s.key) === s);
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > order.length) {
      // The consumed front goes once it is most of the array: amortised O(1) per slot.
      order = order.slice(this.head);
      this.head = 0;
    }
    this.order = order;
  }
}

function cost(key: string): number {
  return SLOT_OVERHEAD + key.length;
}
