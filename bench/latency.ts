/** Latencies in milliseconds, kept as a fixed-size histogram so a long run costs no memory. */
export class LatencyHistogram {
  /** 0.1 ms buckets up to 60 s. */
  private readonly buckets = new Uint32Array(600_000);
  count = 0;

  add(ms: number): void {
    const i = Math.min(this.buckets.length - 1, Math.max(0, Math.floor(ms * 10)));
    this.buckets[i]! += 1;
    this.count += 1;
  }

  addMany(ms: number, n: number): void {
    const i = Math.min(this.buckets.length - 1, Math.max(0, Math.floor(ms * 10)));
    this.buckets[i]! += n;
    this.count += n;
  }

  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const target = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!;
      if (seen >= target) return i / 10;
    }
    return null;
  }
}
