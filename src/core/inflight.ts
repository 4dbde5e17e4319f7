import { BackpressureError } from './errors.ts';

/**
 * The process-wide bound on bytes the inputs hold before the buffers have them
 * (`service.max_inflight_bytes`): read from sockets and request bodies, decompressed,
 * encoded, and not yet staged. Past it the HTTP input answers 503 and forward connections
 * stop reading until room frees.
 *
 * Waiters are served in arrival order. Three rules keep it from ever deadlocking:
 * - a take that does not fit is granted anyway when its holder is the only one holding
 *   anything (one request larger than the whole limit, or a connection alone finishing the
 *   message it is in the middle of);
 * - when every byte held belongs to holders that are themselves waiting (connections each
 *   in the middle of a message, none able to finish), the waiter holding most is served:
 *   it is the closest to finishing, and serving one that holds nothing would only start
 *   another unfinished message;
 * - a holder admitted past the limit is served first until it releases something, so it
 *   finishes its message instead of rotating with the others: what is held exceeds the
 *   limit by about one message, not by one per connection.
 */

export interface TakeOptions {
  /** Stops waiting: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Stops waiting after this long: the promise rejects with a BackpressureError. */
  timeoutMs?: number;
}

/** One holder's share (a request, a connection): released as one, never below zero. */
export interface InflightLease {
  /** The budget's limit. */
  readonly limit: number;
  /** Bytes this holder holds now. */
  readonly held: number;
  /** Takes `bytes` if they fit now (and no one waits before); false otherwise. */
  tryTake(bytes: number): boolean;
  /** Takes `bytes` once they fit, after everyone who waited before. One wait at a time. */
  take(bytes: number, options?: TakeOptions): Promise<void>;
  /** Gives back up to `bytes` (never more than is held). */
  release(bytes: number): void;
  releaseAll(): void;
}

/** What an input answers when a take does not fit: 503 and Retry-After for HTTP. */
export function inflightFull(limit: number): BackpressureError {
  return new BackpressureError(
    `too many bytes in flight (service.max_inflight_bytes ${limit}); retry later`,
    1,
  );
}

interface Holder {
  held: number;
  waiting: boolean;
}

interface Waiter {
  holder: Holder | undefined;
  bytes: number;
  resolve(): void;
  /** Drops the abort listener and the timer. */
  done(): void;
}

export class InflightBudget {
  readonly limit: number;
  private heldBytes = 0;
  private peakBytes = 0;
  /** Taken through the budget's own tryTake / take, by no lease. */
  private loose = 0;
  private readonly waiters: Waiter[] = [];
  /** Held by leases that wait in the queue: nothing of it is released before a waiter is served. */
  private waitingHeld = 0;
  /** The holder admitted past the limit; it goes first until it releases. */
  private finisher: Holder | undefined;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** The most ever held at once. */
  get peak(): number {
    return this.peakBytes;
  }

  /** Takes waiting for room. */
  get waiting(): number {
    return this.waiters.length;
  }

  tryTake(bytes: number): boolean {
    return this.tryTakeFor(undefined, bytes);
  }

  take(bytes: number, options: TakeOptions = {}): Promise<void> {
    return this.takeFor(undefined, bytes, options);
  }

  /** Gives back up to `bytes` taken through the budget's own tryTake / take. */
  release(bytes: number): void {
    this.releaseFor(undefined, bytes);
  }

  /** A holder of its own: what the "only holder" rule and releaseAll go by. */
  lease(): InflightLease {
    const holder: Holder = { held: 0, waiting: false };
    return {
      limit: this.limit,
      get held() {
        return holder.held;
      },
      tryTake: (bytes) => this.tryTakeFor(holder, bytes),
      take: (bytes, options = {}) => {
        if (holder.waiting)
          return Promise.reject(new Error('an in-flight lease waits for one take at a time'));
        return this.takeFor(holder, bytes, options);
      },
      release: (bytes) => this.releaseFor(holder, bytes),
      releaseAll: () => this.releaseFor(holder, holder.held),
    };
  }

  private tryTakeFor(holder: Holder | undefined, bytes: number): boolean {
    if (bytes <= 0) return true;
    // Arrival order: no one overtakes a waiter, but the finisher must not wait behind them.
    if (this.waiters.length > 0 && (holder === undefined || holder !== this.finisher)) return false;
    if (!this.admits(holder, bytes)) return false;
    this.grant(holder, bytes);
    return true;
  }

  private takeFor(holder: Holder | undefined, bytes: number, options: TakeOptions): Promise<void> {
    if (this.tryTakeFor(holder, bytes)) return Promise.resolve();
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const giveUp = (reason: unknown) => {
        const at = this.waiters.indexOf(waiter);
        if (at < 0) return;
        this.waiters.splice(at, 1);
        this.leave(waiter);
        reject(reason);
        // The first waiter leaving may let the next one in.
        this.wake();
      };
      const onAbort = () => giveUp(signal!.reason);
      const waiter: Waiter = {
        holder,
        bytes,
        resolve,
        done: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        },
      };
      this.waiters.push(waiter);
      if (holder) {
        holder.waiting = true;
        this.waitingHeld += holder.held;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            giveUp(
              new BackpressureError(
                `no room under service.max_inflight_bytes (${this.limit} bytes) within ${timeoutMs}ms`,
              ),
            ),
          timeoutMs,
        );
      }
      // Every holder may be waiting already, this one included: then it must be served now.
      this.wake();
    });
  }

  private releaseFor(holder: Holder | undefined, bytes: number): void {
    const give = Math.min(bytes, holder ? holder.held : this.loose);
    if (!(give > 0)) return;
    if (holder) {
      holder.held -= give;
      if (holder.waiting) this.waitingHeld -= give;
      if (holder === this.finisher) this.finisher = undefined;
    } else {
      this.loose -= give;
    }
    this.heldBytes -= give;
    this.wake();
  }

  /** Serves waiters in order while the first one may go; when all are stuck, the one holding most. */
  private wake(): void {
    while (this.waiters.length > 0) {
      let at = 0;
      const first = this.waiters[0]!;
      if (!this.admits(first.holder, first.bytes)) {
        if (!this.stuck()) return;
        at = this.largestHolder();
      }
      const [waiter] = this.waiters.splice(at, 1);
      this.leave(waiter!);
      this.grant(waiter!.holder, waiter!.bytes);
      waiter!.resolve();
    }
  }

  /**
   * The waiter closest to finishing its message: serving it leaves the least behind, where
   * serving one that holds nothing would start one more unfinished message.
   */
  private largestHolder(): number {
    let best = 0;
    for (let i = 1; i < this.waiters.length; i++) {
      if ((this.waiters[i]!.holder?.held ?? 0) > (this.waiters[best]!.holder?.held ?? 0)) best = i;
    }
    return best;
  }

  private admits(holder: Holder | undefined, bytes: number): boolean {
    if (holder !== undefined && holder === this.finisher) return true;
    if (this.heldBytes + bytes <= this.limit) return true;
    // Nothing held by anyone else: waiting could never end.
    return this.heldBytes === (holder?.held ?? 0);
  }

  /** Every byte held is held by a waiter: no release will come unless one is served. */
  private stuck(): boolean {
    return this.heldBytes > 0 && this.waitingHeld === this.heldBytes;
  }

  private leave(waiter: Waiter): void {
    waiter.done();
    const { holder } = waiter;
    if (holder) {
      holder.waiting = false;
      this.waitingHeld -= holder.held;
    }
  }

  private grant(holder: Holder | undefined, bytes: number): void {
    this.heldBytes += bytes;
    if (holder) holder.held += bytes;
    else this.loose += bytes;
    if (this.heldBytes > this.limit && holder !== undefined && this.finisher === undefined)
      this.finisher = holder;
    if (this.heldBytes > this.peakBytes) this.peakBytes = this.heldBytes;
  }
}
