import { randomInt } from 'node:crypto';

/**
 * Recent chunk ids (with their tag) of one forward input, so a chunk re-sent because its ack
 * was lost is acked again but buffered once. Fluent Bit's chunk id is a hash of the payload,
 * so it is stable across re-sends; Fluentd's is a unique id per buffer chunk.
 *
 * Bounded two ways: ids older than the window are forgotten, and past `maxEntries` ids the
 * oldest go first. A chunk still being emitted is "pending": a copy arriving meanwhile (on
 * another connection) waits for that outcome instead of buffering it a second time.
 *
 * Message mode brings a new id with every record, so this holds tens of thousands of them:
 * they live in flat typed arrays (the id's bytes, its tag as a number, its expiry), found
 * through an open-addressing table, compared byte for byte — an id per record costs about 50
 * bytes and no garbage, where a string key, a slot object and a Map entry cost ten times that
 * and kept the collector busy.
 */

export type DedupeState =
  | { state: 'new' }
  | { state: 'done' }
  /** Resolves true when the first copy was buffered, false when it failed (then try again). */
  | { state: 'pending'; settled: Promise<boolean> };

/** A chunk id and the tag it came with: the same id under another tag is another chunk. */
export interface DedupeKey {
  readonly tag: string;
  readonly chunk: Uint8Array;
}

const NEW: DedupeState = { state: 'new' };
const DONE: DedupeState = { state: 'done' };

const FREE = 0;
const PENDING = 1;
const BUFFERED = 2;

/** Id bytes kept inline per slot; longer ids (up to the 128 the input allows) go to a side map. */
const INLINE = 32;

interface Waiter {
  promise: Promise<boolean>;
  resolve: (ok: boolean) => void;
}

export class ChunkDedupe {
  private readonly windowMs: number;
  private readonly maxEntries: number;
  /** Slots form a ring in insertion order (expiry order, nearly: `done` renews in place). */
  private cap = 0;
  private head = 0;
  /** Ring positions in use, holes (failed ids) included. */
  private used = 0;
  private live = 0;
  private state = new Uint8Array(0);
  private expires = new Float64Array(0);
  private tagOf = new Int32Array(0);
  /** Each slot's hash, so moving entries on removal does not hash their ids again. */
  private hashOf = new Int32Array(0);
  private idLength = new Uint8Array(0);
  private idBytes = new Uint8Array(0);
  private readonly longIds = new Map<number, Uint8Array>();
  /** Copies of a pending chunk waiting on it; made on first need, as most are never re-sent. */
  private readonly waiters = new Map<number, Waiter>();
  /** Slot + 1 by hash, 0 empty; linear probing, at most half full. */
  private table = new Int32Array(0);
  private readonly seed = randomInt(0x7fffffff);
  private readonly tags = new Map<string, number>();
  private tagNames: (string | undefined)[] = [];
  private tagRefs: number[] = [];
  private readonly freeTags: number[] = [];

  constructor(windowMs: number, maxEntries = 65_536) {
    this.windowMs = windowMs;
    this.maxEntries = maxEntries;
  }

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  get size(): number {
    return this.live;
  }

  /** Claims `key`: 'new' means the caller emits, then calls `done` or `fail`. */
  begin(key: DedupeKey, now = Date.now()): DedupeState {
    this.prune(now);
    const slot = this.find(key);
    if (slot >= 0 && this.expires[slot]! > now) {
      if (this.state[slot] === BUFFERED) return DONE;
      let waiter = this.waiters.get(slot);
      if (!waiter) {
        let resolve!: (ok: boolean) => void;
        const promise = new Promise<boolean>((r) => {
          resolve = r;
        });
        waiter = { promise, resolve };
        this.waiters.set(slot, waiter);
      }
      return { state: 'pending', settled: waiter.promise };
    }
    // Expired yet still here (a clock step back): whoever waits on it retries.
    if (slot >= 0) this.remove(slot, false);
    this.insert(key, now + this.windowMs, PENDING);
    return NEW;
  }

  /** The chunk is buffered: remember it for the window, from now. */
  done(key: DedupeKey, now = Date.now()): void {
    const slot = this.find(key);
    if (slot < 0) {
      // Pushed out (maxEntries) while it was emitted: known again, as the newest.
      this.prune(now);
      this.insert(key, now + this.windowMs, BUFFERED);
      return;
    }
    this.expires[slot] = now + this.windowMs;
    this.state[slot] = BUFFERED;
    const waiter = this.waiters.get(slot);
    if (waiter) {
      this.waiters.delete(slot);
      waiter.resolve(true);
    }
  }

  /** The chunk was not buffered: forget it, so a re-send is emitted. */
  fail(key: DedupeKey): void {
    const slot = this.find(key);
    if (slot >= 0) this.remove(slot, false);
  }

  /** Drops expired ids from the oldest end, and the oldest past maxEntries. */
  private prune(now: number): void {
    while (this.used > 0) {
      const slot = this.head;
      if (this.state[slot] !== FREE) {
        if (this.expires[slot]! > now && this.live < this.maxEntries) return;
        this.remove(slot, false);
      }
      this.head = (this.head + 1) % this.cap;
      this.used--;
    }
  }

  private insert(key: DedupeKey, expires: number, state: number): void {
    if (this.used === this.cap) this.makeRoom();
    const slot = (this.head + this.used) % this.cap;
    this.used++;
    this.live++;
    this.state[slot] = state;
    this.expires[slot] = expires;
    this.tagOf[slot] = this.tagId(key.tag);
    const id = key.chunk;
    if (id.length <= INLINE) {
      this.idLength[slot] = id.length;
      this.idBytes.set(id, slot * INLINE);
    } else {
      this.idLength[slot] = INLINE + 1;
      this.longIds.set(slot, Uint8Array.from(id));
    }
    const h = this.hash(this.tagOf[slot]!, id);
    this.hashOf[slot] = h;
    let i = h & (this.table.length - 1);
    while (this.table[i] !== 0) i = (i + 1) & (this.table.length - 1);
    this.table[i] = slot + 1;
  }

  /**
   * The ring is full: holes left by failed ids are squeezed out if they are many, else it
   * doubles (up to maxEntries, where prune keeps it from filling).
   */
  private makeRoom(): void {
    const cap = this.cap > 0 && this.live * 2 <= this.cap ? this.cap : Math.max(1024, this.cap * 2);
    const order: number[] = [];
    for (let k = 0; k < this.used; k++) {
      const slot = (this.head + k) % this.cap;
      if (this.state[slot] !== FREE) order.push(slot);
    }
    const state = new Uint8Array(cap);
    const expires = new Float64Array(cap);
    const tagOf = new Int32Array(cap);
    const hashOf = new Int32Array(cap);
    const idLength = new Uint8Array(cap);
    const idBytes = new Uint8Array(cap * INLINE);
    const longIds = new Map<number, Uint8Array>();
    const waiters = new Map<number, Waiter>();
    order.forEach((from, to) => {
      state[to] = this.state[from]!;
      expires[to] = this.expires[from]!;
      tagOf[to] = this.tagOf[from]!;
      hashOf[to] = this.hashOf[from]!;
      idLength[to] = this.idLength[from]!;
      idBytes.set(this.idBytes.subarray(from * INLINE, from * INLINE + INLINE), to * INLINE);
      const long = this.longIds.get(from);
      if (long) longIds.set(to, long);
      const waiter = this.waiters.get(from);
      if (waiter) waiters.set(to, waiter);
    });
    this.state = state;
    this.expires = expires;
    this.tagOf = tagOf;
    this.hashOf = hashOf;
    this.idLength = idLength;
    this.idBytes = idBytes;
    this.longIds.clear();
    for (const [k, v] of longIds) this.longIds.set(k, v);
    this.waiters.clear();
    for (const [k, v] of waiters) this.waiters.set(k, v);
    this.cap = cap;
    this.head = 0;
    this.used = order.length;
    this.table = new Int32Array(tableSize(cap));
    for (let slot = 0; slot < order.length; slot++) {
      let i = this.hashOf[slot]! & (this.table.length - 1);
      while (this.table[i] !== 0) i = (i + 1) & (this.table.length - 1);
      this.table[i] = slot + 1;
    }
  }

  private find(key: DedupeKey): number {
    if (this.live === 0) return -1;
    const tag = this.tags.get(key.tag);
    if (tag === undefined) return -1;
    const id = key.chunk;
    const mask = this.table.length - 1;
    const h = this.hash(tag, id);
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const entry = this.table[i]!;
      if (entry === 0) return -1;
      const slot = entry - 1;
      if (this.hashOf[slot] === h && this.tagOf[slot] === tag && this.sameId(slot, id)) return slot;
    }
  }

  /** Forgets a slot: out of the table (shifting its probe run back), its waiter told `ok`. */
  private remove(slot: number, ok: boolean): void {
    const mask = this.table.length - 1;
    let i = this.hashOf[slot]! & mask;
    while (this.table[i] !== slot + 1) i = (i + 1) & mask;
    // Backward-shift deletion: later entries of the run move up so no lookup stops early.
    for (let j = (i + 1) & mask; this.table[j] !== 0; j = (j + 1) & mask) {
      const other = this.table[j]! - 1;
      const home = this.hashOf[other]! & mask;
      // `other` may fill the hole at i when its home is not cyclically in (i, j].
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        this.table[i] = this.table[j]!;
        i = j;
      }
    }
    this.table[i] = 0;
    this.state[slot] = FREE;
    this.longIds.delete(slot);
    this.untag(this.tagOf[slot]!);
    this.live--;
    const waiter = this.waiters.get(slot);
    if (waiter) {
      this.waiters.delete(slot);
      waiter.resolve(ok);
    }
  }

  private sameId(slot: number, id: Uint8Array): boolean {
    const length = this.idLength[slot]!;
    if (length > INLINE) {
      const long = this.longIds.get(slot)!;
      if (long.length !== id.length) return false;
      for (let k = 0; k < id.length; k++) if (long[k] !== id[k]) return false;
      return true;
    }
    if (length !== id.length) return false;
    const base = slot * INLINE;
    for (let k = 0; k < length; k++) if (this.idBytes[base + k] !== id[k]) return false;
    return true;
  }

  /** Seeded, so ids chosen to collide cannot be prepared in advance. */
  private hash(tag: number, id: Uint8Array): number {
    let h = this.seed ^ Math.imul(tag + 1, 0x9e3779b1);
    for (let k = 0; k < id.length; k++) {
      h = Math.imul(h ^ id[k]!, 0x01000193);
      h ^= h >>> 13;
    }
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** Tags as small numbers, counted so a tag no id refers to is forgotten. */
  private tagId(tag: string): number {
    let id = this.tags.get(tag);
    if (id === undefined) {
      id = this.freeTags.pop() ?? this.tagNames.length;
      this.tags.set(tag, id);
      this.tagNames[id] = tag;
      this.tagRefs[id] = 0;
    }
    this.tagRefs[id]!++;
    return id;
  }

  private untag(id: number): void {
    if (--this.tagRefs[id]! > 0) return;
    this.tags.delete(this.tagNames[id]!);
    this.tagNames[id] = undefined;
    this.freeTags.push(id);
  }
}

/** Twice the slots, rounded up to a power of two: the table stays at most half full. */
function tableSize(cap: number): number {
  let size = 2;
  while (size < cap * 2) size *= 2;
  return size;
}
