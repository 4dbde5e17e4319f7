import { FrameError } from './errors.ts';

/**
 * A structural msgpack reader: it finds where values start and end, and checks them,
 * without building any object. The forward input frames messages, counts PackedForward
 * entries and finds options with it, so records pass through as the sender's bytes.
 *
 * What it accepts is exactly what `core/msgpack.ts` decodes without throwing, so a payload
 * it passed can never poison a chunk later: ext type 0 must be 8 bytes (EventTime), ext -1
 * 4, 8 or 12 bytes (timestamp); no other ext type; map keys are scalars or strings, never
 * containers, binary or ext; 0xc1 never appears.
 */

export const NIL: number = 0;
export const BOOL: number = 1;
export const INT: number = 2;
export const FLOAT: number = 3;
export const STR: number = 4;
export const BIN: number = 5;
export const ARRAY: number = 6;
export const MAP: number = 7;
export const EXT: number = 8;

/** One value's header. Reused between calls to avoid an allocation per value. */
export interface Header {
  /** NIL … EXT above. */
  type: number;
  /** Items of an array, pairs of a map, bytes of a str/bin/ext body; 0 for scalars. */
  length: number;
  /** The number of an INT/FLOAT/BOOL (1/0); the ext type of an EXT. */
  value: number;
}

export function newHeader(): Header {
  return { type: NIL, length: 0, value: 0 };
}

/**
 * Reads the header at `pos`. Returns the position after it (for scalars, after the whole
 * value; for str/bin/ext, where the body starts), or -1 when `end` comes first.
 * Throws FrameError on 0xc1, the one byte msgpack never uses.
 */
export function readHeader(buf: Uint8Array, pos: number, end: number, h: Header): number {
  if (pos >= end) return -1;
  const b = buf[pos]!;
  h.length = 0;
  h.value = 0;
  if (b <= 0x7f) return scalar(h, INT, b, pos + 1);
  if (b >= 0xe0) return scalar(h, INT, b - 0x100, pos + 1);
  if (b <= 0x8f) return sized(h, MAP, b & 0x0f, pos + 1);
  if (b <= 0x9f) return sized(h, ARRAY, b & 0x0f, pos + 1);
  if (b <= 0xbf) return sized(h, STR, b & 0x1f, pos + 1);
  switch (b) {
    case 0xc0:
      return scalar(h, NIL, 0, pos + 1);
    case 0xc2:
      return scalar(h, BOOL, 0, pos + 1);
    case 0xc3:
      return scalar(h, BOOL, 1, pos + 1);
    case 0xc4:
      return pos + 2 > end ? -1 : sized(h, BIN, buf[pos + 1]!, pos + 2);
    case 0xc5:
      return pos + 3 > end ? -1 : sized(h, BIN, u16(buf, pos + 1), pos + 3);
    case 0xc6:
      return pos + 5 > end ? -1 : sized(h, BIN, u32(buf, pos + 1), pos + 5);
    case 0xc7:
      return pos + 3 > end ? -1 : ext(h, buf[pos + 1]!, buf[pos + 2]!, pos + 3);
    case 0xc8:
      return pos + 4 > end ? -1 : ext(h, u16(buf, pos + 1), buf[pos + 3]!, pos + 4);
    case 0xc9:
      return pos + 6 > end ? -1 : ext(h, u32(buf, pos + 1), buf[pos + 5]!, pos + 6);
    case 0xca:
      return pos + 5 > end ? -1 : scalar(h, FLOAT, viewAt(buf, pos + 1, 4).getFloat32(0), pos + 5);
    case 0xcb:
      return pos + 9 > end ? -1 : scalar(h, FLOAT, viewAt(buf, pos + 1, 8).getFloat64(0), pos + 9);
    case 0xcc:
      return pos + 2 > end ? -1 : scalar(h, INT, buf[pos + 1]!, pos + 2);
    case 0xcd:
      return pos + 3 > end ? -1 : scalar(h, INT, u16(buf, pos + 1), pos + 3);
    case 0xce:
      return pos + 5 > end ? -1 : scalar(h, INT, u32(buf, pos + 1), pos + 5);
    case 0xcf:
      return pos + 9 > end ? -1 : scalar(h, INT, Number(viewAt(buf, pos + 1, 8).getBigUint64(0)), pos + 9);
    case 0xd0:
      return pos + 2 > end ? -1 : scalar(h, INT, viewAt(buf, pos + 1, 1).getInt8(0), pos + 2);
    case 0xd1:
      return pos + 3 > end ? -1 : scalar(h, INT, viewAt(buf, pos + 1, 2).getInt16(0), pos + 3);
    case 0xd2:
      return pos + 5 > end ? -1 : scalar(h, INT, viewAt(buf, pos + 1, 4).getInt32(0), pos + 5);
    case 0xd3:
      return pos + 9 > end ? -1 : scalar(h, INT, Number(viewAt(buf, pos + 1, 8).getBigInt64(0)), pos + 9);
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return pos + 2 > end ? -1 : ext(h, 1 << (b - 0xd4), buf[pos + 1]!, pos + 2);
    case 0xd9:
      return pos + 2 > end ? -1 : sized(h, STR, buf[pos + 1]!, pos + 2);
    case 0xda:
      return pos + 3 > end ? -1 : sized(h, STR, u16(buf, pos + 1), pos + 3);
    case 0xdb:
      return pos + 5 > end ? -1 : sized(h, STR, u32(buf, pos + 1), pos + 5);
    case 0xdc:
      return pos + 3 > end ? -1 : sized(h, ARRAY, u16(buf, pos + 1), pos + 3);
    case 0xdd:
      return pos + 5 > end ? -1 : sized(h, ARRAY, u32(buf, pos + 1), pos + 5);
    case 0xde:
      return pos + 3 > end ? -1 : sized(h, MAP, u16(buf, pos + 1), pos + 3);
    case 0xdf:
      return pos + 5 > end ? -1 : sized(h, MAP, u32(buf, pos + 1), pos + 5);
    default:
      throw new FrameError('malformed', `invalid msgpack byte 0x${b.toString(16)} at offset ${pos}`);
  }
}

function scalar(h: Header, type: number, value: number, next: number): number {
  h.type = type;
  h.value = value;
  return next;
}

function sized(h: Header, type: number, length: number, next: number): number {
  h.type = type;
  h.length = length;
  return next;
}

function ext(h: Header, length: number, type: number, next: number): number {
  h.type = EXT;
  h.length = length;
  h.value = type > 127 ? type - 256 : type;
  return next;
}

/** Big-endian readers for msgpack's lengths and numbers, shared by every walker of msgpack bytes. */
export function u16(buf: Uint8Array, pos: number): number {
  return (buf[pos]! << 8) | buf[pos + 1]!;
}

export function u32(buf: Uint8Array, pos: number): number {
  return ((buf[pos]! << 24) >>> 0) + ((buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!);
}

/** 64-bit and float values go through an 8-byte scratch: no DataView per call, no buffer kept alive. */
const scratchBytes = new Uint8Array(8);
const scratchView = new DataView(scratchBytes.buffer);

/** `size` (≤ 8) bytes at `pos` behind a DataView at offset 0, valid until the next call. */
export function viewAt(buf: Uint8Array, pos: number, size: number): DataView {
  for (let i = 0; i < size; i++) scratchBytes[i] = buf[pos + i]!;
  return scratchView;
}

/** The checks of an ext body that `core/msgpack.ts` would otherwise throw on (or turn into odd objects). */
export function checkExt(h: Header, at: number): void {
  if (h.value === 0) {
    if (h.length !== 8)
      throw new FrameError('malformed', `EventTime ext at offset ${at} is ${h.length} bytes, not 8`);
  } else if (h.value === -1) {
    if (h.length !== 4 && h.length !== 8 && h.length !== 12)
      throw new FrameError('malformed', `timestamp ext at offset ${at} is ${h.length} bytes`);
  } else {
    throw new FrameError('malformed', `unsupported msgpack ext type ${h.value} at offset ${at}`);
  }
}

/** ±8.64e15 ms, what a JavaScript Date holds, in whole seconds. */
const DATE_LIMIT_SEC = 8_640_000_000_000;

/**
 * The body of a timestamp ext (-1): nanoseconds past 999,999,999 are no timestamp (the
 * msgpack spec), and the decoder turns it into a Date, so seconds past a Date's range would
 * become an Invalid Date, re-encoded as bytes that no reader takes — one record poisoning a
 * whole chunk on a retry.
 */
export function checkTimestamp(buf: Uint8Array, body: number, length: number, at: number): void {
  let nsec = 0;
  let sec = 0;
  if (length === 8) nsec = u32(buf, body) >>> 2;
  else if (length === 12) {
    nsec = u32(buf, body);
    sec = Number(viewAt(buf, body + 4, 8).getBigInt64(0));
  }
  if (nsec > 999_999_999 || sec >= DATE_LIMIT_SEC || sec <= -DATE_LIMIT_SEC)
    throw new FrameError('malformed', `timestamp ext at offset ${at} is out of range`);
}

const scratch = newHeader();

/**
 * The end of the complete value at `pos`, checked as described at the top of this file.
 * Throws FrameError when it is cut short (`malformed`), nested deeper than `maxDepth`
 * containers (`too_deep`), or not decodable.
 */
export function skipValue(buf: Uint8Array, pos: number, end: number, maxDepth: number): number {
  const state = skipper;
  state.reset();
  const next = state.scan(buf, pos, end, maxDepth, Number.POSITIVE_INFINITY, pos);
  if (next < 0) throw new FrameError('malformed', `msgpack value at offset ${pos} is cut short`);
  return next;
}

/**
 * A resumable scan over one value: `scan` returns where the value ends, or -1 when the
 * bytes run out first; call it again with more bytes and it carries on where it stopped.
 * Memory is two small arrays as deep as the value's nesting.
 */
export class ScanState {
  /** Items left in each open container, innermost last. */
  private readonly left: number[] = [];
  /** Whether each open container is a map (its even-numbered items are keys). */
  private readonly maps: boolean[] = [];
  /** Where the next header starts; -1 before the first call. */
  pos = -1;

  reset(): void {
    // A finished scan leaves both empty; setting length is not free, and skipValue resets every call.
    if (this.left.length > 0) {
      this.left.length = 0;
      this.maps.length = 0;
    }
    this.pos = -1;
  }

  /**
   * Scans from `this.pos` (or `start` on the first call) up to `end`. `limit` bounds the
   * value's size from `origin`: a header announcing more than that throws `too_large` at once,
   * before any of it is buffered.
   */
  scan(buf: Uint8Array, start: number, end: number, maxDepth: number, limit: number, origin: number): number {
    const { left, maps } = this;
    const h = scratch;
    let p = this.pos < 0 ? start : this.pos;
    for (;;) {
      // The values most of a record is made of (short strings and small integers, as keys or
      // values) are stepped over here; everything else goes through readHeader below.
      if (p < end) {
        const b = buf[p]!;
        let next = -1;
        if (b >= 0xa0 && b <= 0xbf) next = p + 1 + (b & 0x1f);
        else if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) next = p + 1;
        else if (b === 0xd9 && p + 1 < end) next = p + 2 + buf[p + 1]!;
        else if (b === 0xcb) next = p + 9;
        else if (b === 0xcc || b === 0xd0) next = p + 2;
        else if (b === 0xcd || b === 0xd1) next = p + 3;
        else if (b === 0xd7 && p + 10 <= end && buf[p + 1] === 0 && u32(buf, p + 6) <= 999_999_999) {
          // fixext 8 type 0: an EventTime, never a map key (the timestamp, -1, is checked below).
          const depth = left.length;
          if (!(depth > 0 && maps[depth - 1]! && left[depth - 1]! % 2 === 0)) next = p + 10;
        }
        if (next >= 0 && next <= end && next - origin <= limit) {
          p = next;
          if (itemDone(left, maps)) {
            this.pos = -1;
            return p;
          }
          continue;
        }
      }
      const depth = left.length;
      const isKey = depth > 0 && maps[depth - 1]! && left[depth - 1]! % 2 === 0;
      const at = p;
      const next = readHeader(buf, p, end, h);
      if (next < 0) {
        this.pos = p;
        return -1;
      }
      switch (h.type) {
        case STR:
        case BIN:
        case EXT: {
          if (isKey && h.type !== STR)
            throw new FrameError('malformed', `map key at offset ${at} is binary or ext`);
          if (h.type === EXT) checkExt(h, at);
          const bodyEnd = next + h.length;
          if (bodyEnd - origin > limit)
            throw new FrameError('too_large', `message is larger than ${limit} bytes`);
          if (bodyEnd > end) {
            this.pos = p;
            return -1;
          }
          if (h.type === EXT && h.value === -1) checkTimestamp(buf, next, h.length, at);
          // An EventTime's nanoseconds past 999,999,999 would print as another time.
          else if (h.type === EXT && h.value === 0 && u32(buf, next + 4) > 999_999_999)
            throw new FrameError(
              'malformed',
              `EventTime ext at offset ${at} has nanoseconds past 999,999,999`,
            );
          p = bodyEnd;
          break;
        }
        case ARRAY:
        case MAP: {
          if (isKey) throw new FrameError('malformed', `map key at offset ${at} is an array or map`);
          const items = h.type === MAP ? h.length * 2 : h.length;
          // Every item takes at least one byte: a count larger than the limit is a lie.
          if (next + items - origin > limit)
            throw new FrameError('too_large', `message is larger than ${limit} bytes`);
          p = next;
          if (items > 0) {
            if (depth >= maxDepth)
              throw new FrameError('too_deep', `nested deeper than ${maxDepth} levels at offset ${at}`);
            left.push(items);
            maps.push(h.type === MAP);
            continue;
          }
          break;
        }
        default:
          if (next - origin > limit)
            throw new FrameError('too_large', `message is larger than ${limit} bytes`);
          p = next;
      }
      if (itemDone(left, maps)) {
        this.pos = -1;
        return p;
      }
    }
  }
}

/** One item is done: closes every container it completed; true when the value is complete. */
function itemDone(left: number[], maps: boolean[]): boolean {
  for (let i = left.length - 1; i >= 0; i--) {
    const rest = left[i]! - 1;
    if (rest > 0) {
      left[i] = rest;
      return false;
    }
    left.pop();
    maps.pop();
  }
  return true;
}

/** A str or bin value's bytes at `pos`, or undefined when it is another type. */
export function readBytes(buf: Uint8Array, pos: number, end: number): Uint8Array | undefined {
  const h = newHeader();
  const next = readHeader(buf, pos, end, h);
  if (next < 0 || (h.type !== STR && h.type !== BIN) || next + h.length > end) return undefined;
  return buf.subarray(next, next + h.length);
}

/** skipValue's state: it runs to the end synchronously, so one serves every call. */
const skipper = new ScanState();

/** True when `frame` holds exactly one well-formed value, nested no deeper than `maxDepth`. */
export function isWholeValue(frame: Uint8Array, maxDepth: number): boolean {
  try {
    return skipValue(frame, 0, frame.length, maxDepth) === frame.length;
  } catch {
    return false;
  }
}
