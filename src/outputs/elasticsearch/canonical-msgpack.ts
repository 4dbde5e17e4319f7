import { isUtf8 } from 'node:buffer';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { isArrayIndexKey, isProtoKey } from '../../core/msgpack-fields.ts';
import { u16, u32, viewAt } from '../../protocol/forward/msgpack-scan.ts';

/**
 * The canonical msgpack of a value — what `pack(unpack(bytes))` gives (core/msgpack.ts:
 * msgpackr, no records, variable map sizes) — written from the bytes without decoding them.
 * Document `_id`s hash the canonical encoding (see document-id.ts), and senders differ from
 * msgpackr in their choices (a uint8 for 5, a map16 for three keys, a float64 holding 2), so
 * the bytes as received cannot be hashed as they are.
 *
 * Values whose canonical form depends on JavaScript's decoding (keys that an object would
 * reorder, merge or rename, non-string keys, invalid UTF-8, NaN payloads, 64-bit integers
 * beyond 2^53, binary, ext types) are rare: for them the writer answers UNSURE and the caller
 * decodes and packs, so the result is the same either way. (A helper of this shape may belong
 * in core beside msgpack-json.ts if another output ever hashes records.)
 */

/** The writer cannot vouch for this value: decode and pack it instead. */
export const UNSURE = -1;

/** Deeper values go to the decoding path, which has no depth limit. */
const MAX_DEPTH = 64;
/** Maps with more keys than this are checked for duplicates by the decoding path instead. */
const MAX_KEYS = 64;

// The write in progress (a write runs to the end synchronously).
let out: JsonBuffer;
let src: Uint8Array = new Uint8Array(0);
let end = 0;
/** Where each key of the open maps starts and how long it is, to find duplicates. */
let keyAt: Int32Array = new Int32Array(256);
let keyLength: Int32Array = new Int32Array(256);
let keyTop = 0;

const EMPTY = new Uint8Array(0);

/**
 * Whether the value at `pos` is already canonical and ends exactly at `limit`: then its bytes
 * are hashed as they are, as most senders' (msgpackr, msgpack-c) are.
 */
export function isCanonical(bytes: Uint8Array, pos: number, limit: number): boolean {
  src = bytes;
  end = limit;
  keyTop = 0;
  try {
    return check(pos, 0) === limit;
  } finally {
    src = EMPTY;
  }
}

/** Where the canonical value at `pos` ends, or UNSURE: writeCanonical's choices, checked. */
function check(pos: number, depth: number): number {
  if (pos >= end) return UNSURE;
  const b = src[pos]!;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return pos + 1;
  if (b <= 0x8f) return checkMap(pos + 1, b & 0x0f, depth);
  if (b <= 0x9f) return checkArray(pos + 1, b & 0x0f, depth);
  if (b <= 0xbf) return checkString(pos + 1, b & 0x1f);
  if (!has(pos, widthAfter(b))) return UNSURE;
  switch (b) {
    case 0xcb: {
      const v = viewAt(src, pos + 1, 8).getFloat64(0);
      return Number.isNaN(v) || v >>> 0 === v || v >> 0 === v ? UNSURE : pos + 9;
    }
    case 0xcc:
      return src[pos + 1]! >= 0x80 ? pos + 2 : UNSURE;
    case 0xcd:
      return u16(src, pos + 1) >= 0x100 ? pos + 3 : UNSURE;
    case 0xce:
      return u32(src, pos + 1) >= 0x10000 ? pos + 5 : UNSURE;
    case 0xd0:
      return (src[pos + 1]! << 24) >> 24 < -0x20 ? pos + 2 : UNSURE;
    case 0xd1:
      return (u16(src, pos + 1) << 16) >> 16 < -0x80 ? pos + 3 : UNSURE;
    case 0xd2:
      return (u32(src, pos + 1) | 0) < -0x8000 ? pos + 5 : UNSURE;
    case 0xd9:
    case 0xda:
    case 0xdb: {
      const at = strBody(pos);
      return smallestStrHeader(b, strBodyLength) ? checkString(at, strBodyLength) : UNSURE;
    }
    case 0xdc: {
      const count = u16(src, pos + 1);
      return count >= 0x10 ? checkArray(pos + 3, count, depth) : UNSURE;
    }
    case 0xdd: {
      const count = u32(src, pos + 1);
      return count >= 0x10000 ? checkArray(pos + 5, count, depth) : UNSURE;
    }
    case 0xde: {
      const count = u16(src, pos + 1);
      return count >= 0x10 ? checkMap(pos + 3, count, depth) : UNSURE;
    }
    case 0xdf: {
      const count = u32(src, pos + 1);
      return count >= 0x10000 ? checkMap(pos + 5, count, depth) : UNSURE;
    }
    default:
      // float32 and 64-bit integers are packed otherwise; binary and ext are decoded.
      return UNSURE;
  }
}

function checkArray(start: number, count: number, depth: number): number {
  if (depth >= MAX_DEPTH) return UNSURE;
  let pos = start;
  for (let i = 0; i < count && pos !== UNSURE; i++) pos = check(pos, depth + 1);
  return pos;
}

function checkMap(start: number, count: number, depth: number): number {
  if (depth >= MAX_DEPTH || count > MAX_KEYS) return UNSURE;
  const base = keyTop;
  if (base + count > keyAt.length) {
    keyAt = grown(keyAt, base + count);
    keyLength = grown(keyLength, base + count);
  }
  /** One bit per key signature seen: only a repeated bit costs a look at the earlier keys. */
  let seen = 0;
  let pos = start;
  for (let i = 0; i < count; i++) {
    if (pos >= end) return UNSURE;
    const b = src[pos]!;
    let at: number;
    let length: number;
    if (b >= 0xa0 && b <= 0xbf) {
      at = pos + 1;
      length = b & 0x1f;
    } else {
      at = strBody(pos);
      length = strBodyLength;
      if (at === UNSURE || !smallestStrHeader(b, length)) return UNSURE;
    }
    const bit = keyBit(at, length);
    if (suspectKey(at, length) || ((seen & bit) !== 0 && seenBefore(base, at, length))) return UNSURE;
    seen |= bit;
    keyAt[keyTop] = at;
    keyLength[keyTop] = length;
    keyTop++;
    pos = checkString(at, length);
    if (pos !== UNSURE) pos = check(pos, depth + 1);
    if (pos === UNSURE) return UNSURE;
  }
  keyTop = base;
  return pos;
}

/** Whether str header `b` is the one msgpackr picks for a body of `length` bytes. */
function smallestStrHeader(b: number, length: number): boolean {
  if (b === 0xd9) return length >= 0x20;
  if (b === 0xda) return length >= 0x100;
  return b === 0xdb && length >= 0x10000;
}

function checkString(at: number, length: number): number {
  const stop = at + length;
  if (stop > end) return UNSURE;
  // A local: the module's variables live in a context object, a load per byte.
  const bytes = src;
  let high = 0;
  let i = at;
  for (; i + 4 <= stop; i += 4) high |= bytes[i]! | bytes[i + 1]! | bytes[i + 2]! | bytes[i + 3]!;
  for (; i < stop; i++) high |= bytes[i]!;
  return high >= 0x80 && !isUtf8(bytes.subarray(at, stop)) ? UNSURE : stop;
}

/**
 * Appends the canonical msgpack of the value at `pos` (ending by `limit`) to `into` and
 * returns the position after the value, or UNSURE with `into` as it was.
 */
export function writeCanonical(into: JsonBuffer, bytes: Uint8Array, pos: number, limit: number): number {
  const mark = into.n;
  out = into;
  src = bytes;
  end = limit;
  keyTop = 0;
  try {
    const next = value(pos, 0);
    if (next === UNSURE) into.n = mark;
    return next;
  } finally {
    src = EMPTY;
  }
}

function value(pos: number, depth: number): number {
  if (pos >= end) return UNSURE;
  const b = src[pos]!;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
    out.byte(b);
    return pos + 1;
  }
  if (b <= 0x8f) return map(pos + 1, b & 0x0f, depth);
  if (b <= 0x9f) return array(pos + 1, b & 0x0f, depth);
  if (b <= 0xbf) return string(pos + 1, b & 0x1f);
  if (!has(pos, widthAfter(b))) return UNSURE;
  switch (b) {
    case 0xca:
      return number(viewAt(src, pos + 1, 4).getFloat32(0), pos + 5);
    case 0xcb:
      return number(viewAt(src, pos + 1, 8).getFloat64(0), pos + 9);
    case 0xcc:
      return number(src[pos + 1]!, pos + 2);
    case 0xcd:
      return number(u16(src, pos + 1), pos + 3);
    case 0xce:
      return number(u32(src, pos + 1), pos + 5);
    case 0xcf:
      return int64(u32(src, pos + 1), u32(src, pos + 5), pos + 9);
    case 0xd0:
      return number((src[pos + 1]! << 24) >> 24, pos + 2);
    case 0xd1:
      return number((u16(src, pos + 1) << 16) >> 16, pos + 3);
    case 0xd2:
      return number(u32(src, pos + 1) | 0, pos + 5);
    case 0xd3:
      return int64(u32(src, pos + 1) | 0, u32(src, pos + 5), pos + 9);
    case 0xd9:
      return string(pos + 2, src[pos + 1]!);
    case 0xda:
      return string(pos + 3, u16(src, pos + 1));
    case 0xdb:
      return string(pos + 5, u32(src, pos + 1));
    case 0xdc:
      return array(pos + 3, u16(src, pos + 1), depth);
    case 0xdd:
      return array(pos + 5, u32(src, pos + 1), depth);
    case 0xde:
      return map(pos + 3, u16(src, pos + 1), depth);
    case 0xdf:
      return map(pos + 5, u32(src, pos + 1), depth);
    default:
      // Binary (decoded to a Buffer) and ext types (EventTime, Date) pack by rules of their own.
      return UNSURE;
  }
}

/** Bytes a header of type `b` holds after its first byte (the whole value, for numbers). */
function widthAfter(b: number): number {
  switch (b) {
    case 0xcc:
    case 0xd0:
    case 0xd9:
      return 1;
    case 0xcd:
    case 0xd1:
    case 0xda:
    case 0xdc:
    case 0xde:
      return 2;
    case 0xca:
    case 0xce:
    case 0xd2:
    case 0xdb:
    case 0xdd:
    case 0xdf:
      return 4;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return 8;
    default:
      return 0;
  }
}

function has(pos: number, after: number): boolean {
  return pos + 1 + after <= end;
}

function array(start: number, count: number, depth: number): number {
  if (depth >= MAX_DEPTH) return UNSURE;
  header(count, 0x90, 0xdc, 0xdd);
  let pos = start;
  for (let i = 0; i < count && pos !== UNSURE; i++) pos = value(pos, depth + 1);
  return pos;
}

/**
 * A map as a JavaScript object packs: its keys in order, each once. Keys an object would
 * reorder (array indices), merge (duplicates), rename (`__proto__`) or that are not strings
 * (numbers become strings) make the map UNSURE.
 */
function map(start: number, count: number, depth: number): number {
  if (depth >= MAX_DEPTH || count > MAX_KEYS) return UNSURE;
  header(count, 0x80, 0xde, 0xdf);
  const base = keyTop;
  if (base + count > keyAt.length) {
    keyAt = grown(keyAt, base + count);
    keyLength = grown(keyLength, base + count);
  }
  let seen = 0;
  let pos = start;
  for (let i = 0; i < count; i++) {
    const at = strBody(pos);
    if (at === UNSURE) return UNSURE;
    const length = strBodyLength;
    const bit = keyBit(at, length);
    if (suspectKey(at, length) || ((seen & bit) !== 0 && seenBefore(base, at, length))) return UNSURE;
    seen |= bit;
    keyAt[keyTop] = at;
    keyLength[keyTop] = length;
    keyTop++;
    pos = string(at, length);
    if (pos !== UNSURE) pos = value(pos, depth + 1);
    if (pos === UNSURE) return UNSURE;
  }
  keyTop = base;
  return pos;
}

/** Set by strBody: the length of the str whose body it found. */
let strBodyLength = 0;

/** Where the body of the str at `pos` starts (its length in strBodyLength), or UNSURE when it is no str. */
function strBody(pos: number): number {
  if (pos >= end) return UNSURE;
  const b = src[pos]!;
  if (b >= 0xa0 && b <= 0xbf) {
    strBodyLength = b & 0x1f;
    return pos + 1;
  }
  if (!has(pos, widthAfter(b))) return UNSURE;
  if (b === 0xd9) {
    strBodyLength = src[pos + 1]!;
    return pos + 2;
  }
  if (b === 0xda) {
    strBodyLength = u16(src, pos + 1);
    return pos + 3;
  }
  if (b === 0xdb) {
    strBodyLength = u32(src, pos + 1);
    return pos + 5;
  }
  return UNSURE;
}

/** A key an object would reorder (an array index) or rename (`__proto__`). */
function suspectKey(at: number, length: number): boolean {
  const first = length > 0 ? src[at]! : 0;
  if (first >= 0x30 && first <= 0x39) return isArrayIndexKey(src, at, length);
  return first === 0x5f && isProtoKey(src, at, length);
}

/** A cheap signature of a key: equal keys have equal bits. */
function keyBit(at: number, length: number): number {
  const first = length > 0 ? src[at]! : 0;
  const last = length > 0 ? src[at + length - 1]! : 0;
  return 1 << ((length + first * 3 + last * 7) & 31);
}

function seenBefore(base: number, at: number, length: number): boolean {
  for (let k = base; k < keyTop; k++) {
    if (keyLength[k] !== length) continue;
    const other = keyAt[k]!;
    let i = 0;
    while (i < length && src[other + i] === src[at + i]) i++;
    if (i === length) return true;
  }
  return false;
}

/** A str body as msgpackr writes the text it decodes to: the same bytes under the smallest header. */
function string(at: number, length: number): number {
  const stop = at + length;
  if (stop > end) return UNSURE;
  let high = 0;
  for (let i = at; i < stop; i++) high |= src[i]!;
  // Invalid UTF-8 decodes to replacement characters, which pack to other bytes.
  if (high >= 0x80 && !isUtf8(src.subarray(at, stop))) return UNSURE;
  if (length < 0x20) out.byte(0xa0 | length);
  else if (length < 0x100) {
    out.byte(0xd9);
    out.byte(length);
  } else header(length, -1, 0xda, 0xdb);
  out.bytes(src, at, stop);
  return stop;
}

/** The smallest header: fix form (`fix` < 0: none) under 16 items, then 16- or 32-bit. */
function header(length: number, fix: number, b16: number, b32: number): void {
  if (fix >= 0 && length < 0x10) out.byte(fix | length);
  else if (length < 0x10000) {
    out.byte(b16);
    out.byte(length >> 8);
    out.byte(length & 0xff);
  } else {
    out.byte(b32);
    writeU32(length);
  }
}

/** A number as msgpackr packs it: the smallest integer form within 32 bits, else float64. */
function number(v: number, next: number): number {
  if (Number.isNaN(v)) return UNSURE; // its payload bits are the engine's business
  if (v >>> 0 === v) {
    if (v < 0x80) out.byte(v);
    else if (v < 0x100) {
      out.byte(0xcc);
      out.byte(v);
    } else if (v < 0x10000) {
      out.byte(0xcd);
      out.byte(v >> 8);
      out.byte(v & 0xff);
    } else {
      out.byte(0xce);
      writeU32(v);
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) out.byte(v & 0xff);
    else if (v >= -0x80) {
      out.byte(0xd0);
      out.byte(v & 0xff);
    } else if (v >= -0x8000) {
      out.byte(0xd1);
      out.byte((v >> 8) & 0xff);
      out.byte(v & 0xff);
    } else {
      out.byte(0xd2);
      writeU32(v >>> 0);
    }
  } else {
    scratchView.setFloat64(0, v);
    out.byte(0xcb);
    out.bytes(scratch, 0, 8);
  }
  return next;
}

/** A 64-bit integer (`hi` signed for int64) decodes to a number within ±2^53, else to a BigInt. */
function int64(hi: number, lo: number, next: number): number {
  if (hi > 0x200000 || hi < -0x200000 || (hi === 0x200000 && lo !== 0)) return UNSURE;
  return number(hi * 0x100000000 + lo, next);
}

function writeU32(v: number): void {
  out.byte(v >>> 24);
  out.byte((v >>> 16) & 0xff);
  out.byte((v >>> 8) & 0xff);
  out.byte(v & 0xff);
}

function grown(array: Int32Array, size: number): Int32Array {
  const next = new Int32Array(Math.max(size, array.length * 2));
  next.set(array);
  return next;
}

/** A float64's bytes are made through this scratch. */
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);
