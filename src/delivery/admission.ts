import type { Permit } from '../buffer/buffer.ts';
import { BackpressureError } from '../core/errors.ts';

interface Waiter {
  bytes: number;
  resolve: (permit: Permit) => void;
  reject: (err: Error) => void;
}

/**
 * Room under total_limit_size, taken before a batch is staged. What is held is the store's
 * bytes plus the permits given out and not yet staged, so senders admitted together can
 * never overfill the buffer; waiters are served in arrival order, each once room for it
 * frees. A batch is admitted into an empty buffer whatever its size, or it could never be.
 */
export class Admission {
  private reserved = 0;
  private readonly waiters: Waiter[] = [];
  /** Set at shutdown: every later take is refused too. */
  private closed: string | undefined;
  private readonly limit: number;
  private readonly held: () => number;

  constructor(limit: number, held: () => number) {
    this.limit = limit;
    this.held = held;
  }

  get reservedBytes(): number {
    return this.reserved;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** A permit now, or undefined when it does not fit or others wait before it. */
  tryTake(bytes: number): Permit | undefined {
    if (this.closed) throw new BackpressureError(this.closed);
    return this.waiters.length === 0 && this.fits(bytes) ? this.grant(bytes) : undefined;
  }

  /** A permit once room for it frees, after everyone who waited before. */
  take(bytes: number): Promise<Permit> {
    const now = this.tryTake(bytes);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  /** Room may have freed: serve waiters in order while the first one fits. */
  wake(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      w.resolve(this.grant(w.bytes));
    }
  }

  /** Refuses every waiter, and every take from now on. */
  close(reason: string): void {
    this.closed = reason;
    for (const w of this.waiters.splice(0)) w.reject(new BackpressureError(reason));
  }

  private fits(bytes: number): boolean {
    const used = this.held() + this.reserved;
    return used + bytes <= this.limit || used === 0;
  }

  private grant(bytes: number): Permit {
    this.reserved += bytes;
    let released = false;
    return {
      bytes,
      release: () => {
        if (released) return;
        released = true;
        this.reserved -= bytes;
        this.wake();
      },
    };
  }
}
