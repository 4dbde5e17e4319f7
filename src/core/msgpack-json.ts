import { isUtf8 } from 'node:buffer';
import { skipValue, u16, u32, viewAt } from '../protocol/forward/msgpack-scan.ts';
import { isLogRecord } from './entry.ts';
import { errorMessage } from './errors.ts';
import { EventTime } from './event-time.ts';
import { type FastBuffer, JsonBuffer } from './json-buffer.ts';
import { unpackStream } from './msgpack.ts';
import { isArrayIndexKey, isProtoKey } from './msgpack-fields.ts';
import { toJson } from './to-json.ts';

/**
 * msgpack → JSON without building the value: the JSON of a record is written from its
 * msgpack bytes. The output is byte for byte what `toJson(unpack(bytes))` gives (the
 * decoded path other code still takes), so which path a record went through never shows:
 * strings escaped as JSON.stringify escapes them, invalid UTF-8 replaced as the decoder
 * replaces it, binary as text when it is valid UTF-8 else base64, numbers printed as
 * JavaScript prints them (NaN and infinities as null), 64-bit integers exact, EventTime as
 * RFC 3339 with nine digits, and maps with the key order and duplicate handling of a
 * JavaScript object.
 *
 * The few shapes where a JavaScript object would reorder or merge keys (integer-like keys,
 * duplicate keys, non-string keys, `__proto__`, maps of many keys) are rare and costly to
 * reproduce byte by byte, so such a value is decoded and encoded the old way instead.
 */

/** Thrown when a value cannot be encoded at all: it is the record's, and the same every try. */
export class EncodeError extends Error {
  override name = 'EncodeError';
}

/**
 * Deeper values are left to the decoding path, which handles any depth msgpack-wise (the
 * inputs allow max_nesting_depth up to 10,000) but whose JSON.stringify may run out of stack:
 * then the record is refused with that reason, as before.
 */
const MAX_FAST_DEPTH = 256;

/** Maps with more keys than this are checked for duplicates by the decoding path instead. */
const MAX_FAST_KEYS = 64;

/** Thrown inside the fast path to hand a value to the decoding one; never escapes this module. */
const SLOW: unique symbol = Symbol('slow');

// The write in progress. Module state: a write runs to the end synchronously, and plain
// variables keep the hot loops free of property loads.
let out: JsonBuffer = new JsonBuffer(64);
let src: Uint8Array = new Uint8Array(0);
let end = 0;
let buf: Buffer = Buffer.alloc(0);
let n = 0;
/** Keys of the open maps (where each starts in `src`, and a cheap signature), to find duplicates. */
let keyAt: Int32Array = new Int32Array(256);
let keySig: Int32Array = new Int32Array(256);
let keyTop = 0;

/**
 * Writes the JSON of the msgpack value at `pos` (which must end by `limit`) and returns the
 * position after it. Throws EncodeError for what JSON cannot take (an unknown ext type, a
 * value cut short); `into` is then left as it was.
 */
export function writeJson(into: JsonBuffer, bytes: Uint8Array, pos: number, limit: number): number {
  return write(into, bytes, pos, limit, NO_KEYS);
}

/**
 * writeJson for a map, leaving out the top-level keys in `without` (UTF-8 bytes of each):
 * a record minus the fields an output moved elsewhere (labels, metadata, removed keys).
 */
export function writeJsonWithout(
  into: JsonBuffer,
  bytes: Uint8Array,
  pos: number,
  limit: number,
  without: readonly Uint8Array[],
): number {
  return write(into, bytes, pos, limit, without);
}

/**
 * UTF-8 bytes (a line already written, say) as a JSON string, escaped as JSON.stringify
 * escapes the text they decode to.
 */
export function writeJsonString(into: JsonBuffer, bytes: Uint8Array, start: number, stop: number): void {
  out = into;
  src = bytes;
  end = stop;
  buf = into.buf;
  n = into.n;
  try {
    string(start, stop - start, false);
    into.n = n;
  } finally {
    release();
  }
}

const NO_KEYS: readonly Uint8Array[] = [];
/** Top-level keys left out of the map being written. */
let omit: readonly Uint8Array[] = NO_KEYS;

function write(
  into: JsonBuffer,
  bytes: Uint8Array,
  pos: number,
  limit: number,
  without: readonly Uint8Array[],
): number {
  const mark = into.n;
  out = into;
  src = bytes;
  end = limit;
  buf = into.buf;
  n = into.n;
  keyTop = 0;
  omit = without;
  try {
    const next = value(pos, 0);
    into.n = n;
    return next;
  } catch (err) {
    into.n = mark;
    if (err !== SLOW) throw asEncodeError(err);
  } finally {
    release();
    omit = NO_KEYS;
  }
  let text: string;
  let valueEnd: number;
  try {
    valueEnd = skipValue(bytes, pos, limit, Number.POSITIVE_INFINITY);
    const [decoded] = unpackStream(bytes.subarray(pos, valueEnd));
    if (without.length > 0 && isLogRecord(decoded)) {
      for (const key of without) delete decoded[Buffer.from(key).toString('utf8')];
    }
    text = toJson(decoded);
  } catch (err) {
    throw asEncodeError(err);
  }
  into.utf8(text);
  return valueEnd;
}

/** What a failure to write a record as JSON is reported as (a stack overflow: too deep). */
export function asEncodeError(err: unknown): EncodeError {
  if (err instanceof EncodeError) return err;
  // JSON.stringify recursing through a record nested thousands deep.
  if (err instanceof RangeError && /call stack/i.test(err.message))
    return new EncodeError('nested too deep to write as JSON');
  return new EncodeError(errorMessage(err));
}

// Dropped after each write so neither a chunk's bytes nor its output buffer are kept alive
// by this module.
const EMPTY = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
const EMPTY_OUT = new JsonBuffer(64);

function release(): void {
  src = EMPTY;
  buf = EMPTY_BUFFER;
  out = EMPTY_OUT;
}

function room(size: number): void {
  if (n + size > buf.length) {
    out.n = n;
    buf = out.ensure(size);
  }
}

function value(pos: number, depth: number): number {
  if (pos >= end) throw cutShort(pos);
  const b = src[pos]!;
  if (b <= 0x7f) {
    uint(b);
    return pos + 1;
  }
  if (b >= 0xe0) {
    int(b - 0x100);
    return pos + 1;
  }
  if (b <= 0x8f) return map(pos + 1, b & 0x0f, depth);
  if (b <= 0x9f) return array(pos + 1, b & 0x0f, depth);
  if (b <= 0xbf) return string(pos + 1, b & 0x1f, false);
  switch (b) {
    case 0xc0:
      return word(NULL, pos + 1);
    case 0xc2:
      return word(FALSE, pos + 1);
    case 0xc3:
      return word(TRUE, pos + 1);
    case 0xc4:
      need(pos + 2);
      return binary(pos + 2, src[pos + 1]!);
    case 0xc5:
      need(pos + 3);
      return binary(pos + 3, u16(src, pos + 1));
    case 0xc6:
      need(pos + 5);
      return binary(pos + 5, u32(src, pos + 1));
    case 0xca:
      need(pos + 5);
      double(viewAt(src, pos + 1, 4).getFloat32(0));
      return pos + 5;
    case 0xcb:
      need(pos + 9);
      double(viewAt(src, pos + 1, 8).getFloat64(0));
      return pos + 9;
    case 0xcc:
      need(pos + 2);
      uint(src[pos + 1]!);
      return pos + 2;
    case 0xcd:
      need(pos + 3);
      uint(u16(src, pos + 1));
      return pos + 3;
    case 0xce:
      need(pos + 5);
      uint(u32(src, pos + 1));
      return pos + 5;
    case 0xcf:
      need(pos + 9);
      uint64(pos + 1);
      return pos + 9;
    case 0xd0:
      need(pos + 2);
      int((src[pos + 1]! << 24) >> 24);
      return pos + 2;
    case 0xd1:
      need(pos + 3);
      int((u16(src, pos + 1) << 16) >> 16);
      return pos + 3;
    case 0xd2:
      need(pos + 5);
      int(u32(src, pos + 1) | 0);
      return pos + 5;
    case 0xd3:
      need(pos + 9);
      int64(pos + 1);
      return pos + 9;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      need(pos + 2);
      return ext(pos, pos + 1, 1 << (b - 0xd4));
    case 0xc7:
      need(pos + 3);
      return ext(pos, pos + 2, src[pos + 1]!);
    case 0xc8:
      need(pos + 4);
      return ext(pos, pos + 3, u16(src, pos + 1));
    case 0xc9:
      need(pos + 6);
      return ext(pos, pos + 5, u32(src, pos + 1));
    case 0xd9:
      need(pos + 2);
      return string(pos + 2, src[pos + 1]!, false);
    case 0xda:
      need(pos + 3);
      return string(pos + 3, u16(src, pos + 1), false);
    case 0xdb:
      need(pos + 5);
      return string(pos + 5, u32(src, pos + 1), false);
    case 0xdc:
      need(pos + 3);
      return array(pos + 3, u16(src, pos + 1), depth);
    case 0xdd:
      need(pos + 5);
      return array(pos + 5, u32(src, pos + 1), depth);
    case 0xde:
      need(pos + 3);
      return map(pos + 3, u16(src, pos + 1), depth);
    case 0xdf:
      need(pos + 5);
      return map(pos + 5, u32(src, pos + 1), depth);
    default:
      throw new EncodeError(`invalid msgpack byte 0x${b.toString(16)} at offset ${pos}`);
  }
}

function array(start: number, count: number, depth: number): number {
  if (depth >= MAX_FAST_DEPTH) throw SLOW;
  room(2);
  buf[n++] = 0x5b; // [
  let pos = start;
  for (let i = 0; i < count; i++) {
    if (i > 0) {
      room(1);
      buf[n++] = 0x2c; // ,
    }
    pos = value(pos, depth + 1);
  }
  room(1);
  buf[n++] = 0x5d; // ]
  return pos;
}

/**
 * A map's keys must come out as a JavaScript object would list them: integer-like keys go
 * first there, a repeated key keeps its first place and last value, and keys are strings.
 * Maps where any of that would show take the decoding path.
 */
function map(start: number, count: number, depth: number): number {
  if (depth >= MAX_FAST_DEPTH || count > MAX_FAST_KEYS) throw SLOW;
  room(2);
  buf[n++] = 0x7b; // {
  const base = keyTop;
  if (base + count > keyAt.length) {
    keyAt = grown(keyAt, base + count);
    keySig = grown(keySig, base + count);
  }
  /** One bit per key signature seen: only a repeated bit costs a look at the earlier keys. */
  let seen = 0;
  let pos = start;
  let written = 0;
  for (let i = 0; i < count; i++) {
    if (pos >= end) throw cutShort(pos);
    const b = src[pos]!;
    let at: number;
    let length: number;
    if (b >= 0xa0 && b <= 0xbf) {
      at = pos + 1;
      length = b & 0x1f;
    } else if (b === 0xd9) {
      need(pos + 2);
      at = pos + 2;
      length = src[pos + 1]!;
    } else if (b === 0xda) {
      need(pos + 3);
      at = pos + 3;
      length = u16(src, pos + 1);
    } else if (b === 0xdb) {
      need(pos + 5);
      at = pos + 5;
      length = u32(src, pos + 1);
    } else {
      throw SLOW;
    }
    need(at + length);
    if (depth === 0 && omit.length > 0 && isOmitted(at, length)) {
      pos = skipValue(src, at + length, end, Number.POSITIVE_INFINITY);
      continue;
    }
    if (written++ > 0) {
      room(1);
      buf[n++] = 0x2c; // ,
    }
    const first = length > 0 ? src[at]! : 0;
    if (first <= 0x39 && first >= 0x30 && isArrayIndexKey(src, at, length)) throw SLOW;
    const last = length > 0 ? src[at + length - 1]! : 0;
    if (first === 0x5f && last === 0x5f && isProtoKey(src, at, length)) throw SLOW;
    const sig = length | (first << 16) | (last << 24);
    const bit = 1 << ((length + first * 3 + last * 7) & 31);
    if ((seen & bit) !== 0) {
      for (let k = base; k < keyTop; k++) {
        if (keySig[k] === sig && sameBytes(keyAt[k]!, at, length)) throw SLOW;
      }
    }
    seen |= bit;
    keyAt[keyTop] = at;
    keySig[keyTop] = sig;
    keyTop++;
    pos = string(at, length, true);
    room(1);
    buf[n++] = 0x3a; // :
    pos = value(pos, depth + 1);
  }
  keyTop = base;
  room(1);
  buf[n++] = 0x7d; // }
  return pos;
}

function isOmitted(at: number, length: number): boolean {
  for (const key of omit) {
    if (key.length !== length) continue;
    let i = 0;
    while (i < length && src[at + i] === key[i]) i++;
    if (i === length) return true;
  }
  return false;
}

function grown(array: Int32Array, size: number): Int32Array {
  const next = new Int32Array(Math.max(size, array.length * 2));
  next.set(array);
  return next;
}

function sameBytes(a: number, b: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (src[a + i] !== src[b + i]) return false;
  return true;
}

/** What a byte of a str body needs: 0 copied, 1 copied but not ASCII, 2 escaped. */
const CLASS = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) CLASS[c] = 2;
CLASS[0x22] = 2;
CLASS[0x5c] = 2;
for (let c = 0x80; c < 0x100; c++) CLASS[c] = 1;

/** JSON.stringify's escapes (lower-case hex, as V8 writes them). */
const ESCAPES: Uint8Array[] = Array.from({ length: 0x5d }, (_, c) => {
  const named: Record<number, string> = {
    8: '\\b',
    9: '\\t',
    10: '\\n',
    12: '\\f',
    13: '\\r',
    34: '\\"',
    92: '\\\\',
  };
  return Buffer.from(named[c] ?? `\\u${c.toString(16).padStart(4, '0')}`, 'latin1');
});

/**
 * A str body as a JSON string. Bytes are copied as they are (valid UTF-8 is valid JSON),
 * with `"`, `\` and control characters escaped. Invalid UTF-8 is decoded and re-encoded the
 * way the decoder replaces it; for a key, it takes the decoding path (two such keys may
 * decode to the same string).
 */
function string(at: number, length: number, key: boolean): number {
  const stop = at + length;
  need(stop);
  const mark = n;
  // Room for the worst case (every byte a \u00XX escape) when that is small; a long string
  // is counted first so a megabyte of text does not ask for six.
  let size = length * 6 + 2;
  if (length > 256) {
    size = length + 2;
    for (let i = at; i < stop; i++) {
      const c = CLASS[src[i]!]!;
      if (c === 2) size += 5;
    }
  }
  room(size);
  // Locals: the module's variables live in a context object, a load or store per byte.
  const from = src;
  const to = buf;
  let w = n;
  let high = 0;
  to[w++] = 0x22;
  let i = at;
  // Four plain bytes at a time while they last: most of a log line needs no escape.
  while (i + 4 <= stop) {
    const c0 = from[i]!;
    const c1 = from[i + 1]!;
    const c2 = from[i + 2]!;
    const c3 = from[i + 3]!;
    if ((CLASS[c0]! | CLASS[c1]! | CLASS[c2]! | CLASS[c3]!) !== 0) break;
    to[w] = c0;
    to[w + 1] = c1;
    to[w + 2] = c2;
    to[w + 3] = c3;
    i += 4;
    w += 4;
  }
  for (; i < stop; i++) {
    const c = from[i]!;
    const k = CLASS[c]!;
    if (k === 0) to[w++] = c;
    else if (k === 1) {
      high = 1;
      to[w++] = c;
    } else {
      const esc = ESCAPES[c]!;
      for (let e = 0; e < esc.length; e++) to[w++] = esc[e]!;
    }
  }
  to[w++] = 0x22;
  n = w;
  if (high === 1 && !isUtf8(src.subarray(at, stop))) {
    if (key) throw SLOW;
    n = mark;
    const text = JSON.stringify(Buffer.from(src.buffer, src.byteOffset + at, length).toString('utf8'));
    room(text.length * 3);
    n += (buf as FastBuffer).utf8Write(text, n);
  }
  return stop;
}

/** Binary: as text when it is valid UTF-8, else base64. */
function binary(at: number, length: number): number {
  const stop = at + length;
  need(stop);
  const body = src.subarray(at, stop);
  if (isUtf8(body)) return string(at, length, false);
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('base64');
  room(text.length + 2);
  buf[n++] = 0x22;
  n += (buf as FastBuffer).latin1Write(text, n);
  buf[n++] = 0x22;
  return stop;
}

const NULL = Buffer.from('null');
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');

function word(text: Buffer, next: number): number {
  room(text.length);
  for (let i = 0; i < text.length; i++) buf[n++] = text[i]!;
  return next;
}

function ascii(text: string): void {
  room(text.length);
  n += (buf as FastBuffer).latin1Write(text, n);
}

/** A non-negative integer below 2^53 in decimal. */
function uint(v: number): void {
  room(16);
  if (v < 10) {
    buf[n++] = 48 + v;
    return;
  }
  if (v < 100) {
    const q = (v / 10) | 0;
    buf[n++] = 48 + q;
    buf[n++] = 48 + v - q * 10;
    return;
  }
  let digits = 3;
  for (let x = v; x >= 1000; x = Math.floor(x / 10)) digits++;
  let at = n + digits;
  n = at;
  let x = v;
  while (x >= 0x80000000) {
    const q = Math.floor(x / 10);
    buf[--at] = 48 + (x - q * 10);
    x = q;
  }
  let y = x | 0;
  do {
    const q = (y / 10) | 0;
    buf[--at] = 48 + (y - q * 10);
    y = q;
  } while (y > 0);
}

function int(v: number): void {
  if (v < 0) {
    room(1);
    buf[n++] = 0x2d; // -
    uint(-v);
  } else {
    uint(v);
  }
}

function double(v: number): void {
  if (Number.isFinite(v)) ascii(String(v));
  else word(NULL, 0);
}

function uint64(at: number): void {
  const hi = u32(src, at);
  if (hi < 0x200000) uint(hi * 0x100000000 + u32(src, at + 4));
  else ascii(viewAt(src, at, 8).getBigUint64(0).toString());
}

function int64(at: number): void {
  const hi = u32(src, at) | 0;
  if (hi >= -0x200000 && hi < 0x200000) int(hi * 0x100000000 + u32(src, at + 4));
  else ascii(viewAt(src, at, 8).getBigInt64(0).toString());
}

/** EventTime (ext 0, 8 bytes) as RFC 3339; the timestamp ext (-1) as the decoder's Date does. */
function ext(valueAt: number, typeAt: number, length: number): number {
  const body = typeAt + 1;
  const stop = body + length;
  need(stop);
  const type = src[typeAt]!;
  if (type === 0 && length === 8) {
    room(32);
    buf[n++] = 0x22;
    out.n = n;
    writeIsoTime(out, u32(src, body), u32(src, body + 4));
    n = out.n;
    buf = out.buf;
    buf[n++] = 0x22;
    return stop;
  }
  if (type !== 0xff)
    throw new EncodeError(`unsupported msgpack ext type ${(type << 24) >> 24} of ${length} bytes`);
  let text: string;
  try {
    text = toJson(unpackStream(src.subarray(valueAt, stop))[0]);
  } catch (err) {
    throw asEncodeError(err);
  }
  ascii(text);
  return stop;
}

let isoSec = -1;
let isoHead = '';

/** `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, as EventTime.toIso writes it; the seconds part is cached. */
export function writeIsoTime(out: JsonBuffer, sec: number, nsec: number): void {
  if (sec !== isoSec) {
    // What a Date holds; a time past it (buffered before inputs refused such times) is the record's.
    if (!(sec >= 0 && sec < 8_640_000_000_000)) throw new EncodeError(`time ${sec} s is out of range`);
    isoHead = new EventTime(sec, 0).toIso().slice(0, 20);
    isoSec = sec;
  }
  out.ascii(isoHead);
  out.padded(nsec, 9);
  out.byte(0x5a); // Z
}

function need(until: number): void {
  if (until > end) throw cutShort(end);
}

function cutShort(at: number): EncodeError {
  return new EncodeError(`msgpack value cut short at offset ${at}`);
}
