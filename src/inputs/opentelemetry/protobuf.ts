import type { FastBuffer } from '../../core/json-buffer.ts';

/**
 * The protobuf wire format, as far as OTLP's log messages need it: varints, fixed 32/64-bit
 * numbers and length-delimited fields. Hand-written rather than generated: the OTLP log
 * messages are a dozen small messages, and a decoder of our own can be bounded (depth,
 * counts, bytes held) where a generated one would build whatever a hostile body describes.
 */

export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;
export const FIXED32 = 5;

/** A body that is not the protobuf it claims to be; the message says where. */
export class ProtoError extends Error {
  override readonly name = 'ProtoError';
}

const TWO_32 = 2 ** 32;

/**
 * Short ASCII strings seen before (attribute keys, body keys, `INFO`, `GET`…), by a hash of
 * their bytes: most strings of an OTLP request repeat from record to record, and a hit costs
 * a byte comparison instead of a string allocation. Strings, not bytes, are kept: a cached
 * subarray would hold a whole request body alive.
 */
const CACHE_SLOTS = 4096;
const CACHED_MAX = 24;
const cache: (string | undefined)[] = new Array(CACHE_SLOTS);

export class ProtoReader {
  readonly buf: Buffer;
  pos: number;
  /** Where the message being read ends. */
  end: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    this.end = end;
  }

  /** The next field's tag (number << 3 | wire type); 0 at the end of the message. */
  tag(): number {
    if (this.pos >= this.end) return 0;
    const tag = this.uint32();
    if (tag >>> 3 === 0) throw this.error('field number 0');
    return tag;
  }

  /** A varint of at most 32 bits of value (lengths, enums, tags). */
  uint32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        // Wider values (a negative int32 is ten bytes) are cut to 32 bits, as protobuf does.
        return result % TWO_32;
      }
    }
    // Up to ten bytes are legal for a sign-extended int32: skip the rest.
    for (let i = 0; i < 5; i++) if (this.byte() < 0x80) return result % TWO_32;
    throw this.error('varint longer than 10 bytes');
  }

  /** An int32 (enums, sizes): the low 32 bits, signed. */
  int32(): number {
    return this.uint32() | 0;
  }

  /** An int64 varint: a number where a double holds it exactly, else a BigInt. */
  int64(): number | bigint {
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let i = 0; i < 4; i++) {
      b = this.byte();
      lo += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return lo;
    }
    b = this.byte();
    lo += (b & 0x0f) * 2 ** 28;
    hi = (b & 0x70) >> 4;
    if (b >= 0x80) {
      for (let i = 0; i < 5; i++) {
        b = this.byte();
        hi += (b & 0x7f) * 2 ** (3 + 7 * i);
        if (b < 0x80) break;
        if (i === 4) throw this.error('varint longer than 10 bytes');
      }
    }
    return combine(lo >>> 0, hi % TWO_32);
  }

  /** fixed64 as an unsigned BigInt (nanosecond timestamps pass 2^53). */
  fixed64(): bigint {
    const lo = this.fixed32();
    const hi = this.fixed32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  fixed32(): number {
    const p = this.need(4);
    const b = this.buf;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)) + b[p + 3]! * 2 ** 24;
  }

  double(): number {
    return this.buf.readDoubleLE(this.need(8));
  }

  /** The bounds of a length-delimited field's bytes; the reader moves past them. */
  span(): [number, number] {
    const length = this.uint32();
    const start = this.need(length);
    return [start, start + length];
  }

  bytes(): Uint8Array {
    const [start, end] = this.span();
    // A copy: the body is let go once decoded, and a record must not pin it.
    return this.buf.slice(start, end);
  }

  string(): string {
    const length = this.uint32();
    const start = this.need(length);
    const end = start + length;
    const buf = this.buf as FastBuffer;
    if (length > CACHED_MAX) return buf.utf8Slice(start, end);
    let hash = length;
    for (let i = start; i < end; i++) {
      const b = buf[i]!;
      if (b >= 0x80) return buf.utf8Slice(start, end);
      hash = (Math.imul(hash, 31) + b) | 0;
    }
    const slot = hash & (CACHE_SLOTS - 1);
    const seen = cache[slot];
    if (seen !== undefined && seen.length === length) {
      let same = true;
      for (let i = 0; same && i < length; i++) same = seen.charCodeAt(i) === buf[start + i];
      if (same) return seen;
    }
    const text = buf.latin1Slice(start, end);
    cache[slot] = text;
    return text;
  }

  /** Skips a field of this wire type. */
  skip(wireType: number): void {
    if (wireType === VARINT) this.int64();
    else if (wireType === FIXED64) this.need(8);
    else if (wireType === LEN) this.span();
    else if (wireType === FIXED32) this.need(4);
    else throw this.error(`wire type ${wireType} (groups are not used by OTLP)`);
  }

  /** Checks that the field has the wire type its number calls for. */
  expect(tag: number, wireType: number): void {
    if ((tag & 7) !== wireType)
      throw this.error(`field ${tag >>> 3} has wire type ${tag & 7}, expected ${wireType}`);
  }

  error(what: string): ProtoError {
    return new ProtoError(`invalid protobuf at byte ${this.pos}: ${what}`);
  }

  private byte(): number {
    if (this.pos >= this.end) throw this.error('message cut short');
    return this.buf[this.pos++]!;
  }

  private need(n: number): number {
    const p = this.pos;
    if (n > this.end - p) throw this.error('field longer than its message');
    this.pos = p + n;
    return p;
  }
}

/** Two 32-bit halves of a two's-complement int64 as a number when exact, else a BigInt. */
function combine(lo: number, hi: number): number | bigint {
  if (hi < 0x200000) return hi * TWO_32 + lo;
  if (hi >= 0xffe00000) return (hi - TWO_32) * TWO_32 + lo;
  return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
}

/** Bytes a length-delimited field's length takes, reserved before its content is written. */
const LENGTH_ROOM = 5;

/**
 * Writes protobuf into one growing buffer. A nested message is opened with `begin`, which
 * leaves room for its length, and closed with `end`, which writes the length and moves the
 * content back over the room it did not need: no sizing pass, no per-message buffers.
 */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  /** The bytes written (a view of the writer's buffer). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  /** A non-negative integer below 2^53. */
  varint(n: number): void {
    this.room(10);
    const buf = this.buf;
    while (n >= 128) {
      buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[this.pos++] = n;
  }

  /** An int64 field's varint: negative values as ten bytes of two's complement. */
  int64(value: number | bigint): void {
    if (typeof value === 'number' && value >= 0) {
      this.varint(value);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    this.room(10);
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  fixed64(value: bigint): void {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt.asUintN(64, value), this.pos);
    this.pos += 8;
  }

  fixed32(value: number): void {
    this.room(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  double(value: number): void {
    this.room(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  string(field: number, text: string): void {
    this.tag(field, LEN);
    const length = Buffer.byteLength(text);
    this.varint(length);
    this.room(length);
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, LEN);
    this.varint(data.length);
    this.room(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  /** Opens a nested message (or packed field): returns where its content starts. */
  begin(field: number): number {
    this.tag(field, LEN);
    this.room(LENGTH_ROOM);
    this.pos += LENGTH_ROOM;
    return this.pos;
  }

  /** Closes what `begin` opened at `start`. */
  end(start: number): void {
    const length = this.pos - start;
    const buf = this.buf;
    // Written in the room begin left (a length below 2^35 takes at most five bytes).
    let p = start - LENGTH_ROOM;
    let n = length;
    while (n >= 128) {
      buf[p++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    buf[p++] = n;
    if (p < start) buf.copyWithin(p, start, start + length);
    this.pos = p + length;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }
}
