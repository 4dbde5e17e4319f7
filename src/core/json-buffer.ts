/** Buffer's own string writers and readers, which skip the argument juggling of `write` and `toString` (not in @types/node). */
export interface FastBuffer extends Buffer {
  latin1Write(text: string, offset: number): number;
  utf8Write(text: string, offset: number): number;
  latin1Slice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

/**
 * A growing byte buffer that JSON is written into: one allocation per chunk rather than a
 * string per record joined at the end (which costs a copy per record and a UTF-8 encode of
 * the whole text on top).
 */
export class JsonBuffer {
  buf: Buffer;
  /** Bytes written so far. */
  n = 0;

  constructor(size = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(64, size));
  }

  /** Room for `extra` more bytes; returns the (possibly new) backing buffer. */
  ensure(extra: number): Buffer {
    const need = this.n + extra;
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.n);
      this.buf = next;
    }
    return this.buf;
  }

  byte(b: number): void {
    if (this.n >= this.buf.length) this.ensure(1);
    this.buf[this.n++] = b;
  }

  /** Text known to be ASCII (digits, ISO times, base64, constants). */
  ascii(text: string): void {
    this.ensure(text.length);
    this.n += (this.buf as FastBuffer).latin1Write(text, this.n);
  }

  /** Any text, as UTF-8. */
  utf8(text: string): void {
    this.ensure(text.length * 3);
    this.n += (this.buf as FastBuffer).utf8Write(text, this.n);
  }

  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const length = end - start;
    const buf = this.ensure(length);
    let n = this.n;
    if (length < 32) {
      for (let i = start; i < end; i++) buf[n++] = src[i]!;
    } else {
      buf.set(start === 0 && end === src.length ? src : src.subarray(start, end), n);
      n += length;
    }
    this.n = n;
  }

  /** A non-negative integer below 2^53, in decimal. */
  uint(value: number): void {
    if (value < 10) {
      this.byte(48 + value);
      return;
    }
    const buf = this.ensure(16);
    let digits = 1;
    for (let v = value; v >= 10; v = Math.floor(v / 10)) digits++;
    let at = this.n + digits;
    this.n = at;
    for (let v = value; ; ) {
      const q = Math.floor(v / 10);
      buf[--at] = 48 + (v - q * 10);
      if (q === 0) break;
      v = q;
    }
  }

  /** A non-negative integer below 10^width, zero-padded to `width` digits. */
  padded(value: number, width: number): void {
    const buf = this.ensure(width);
    let at = this.n + width;
    this.n = at;
    for (let v = value, i = 0; i < width; i++) {
      const q = Math.floor(v / 10);
      buf[--at] = 48 + (v - q * 10);
      v = q;
    }
  }

  /** What was written, without a copy: valid until the next write into this buffer. */
  view(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}
