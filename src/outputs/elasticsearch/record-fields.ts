import { valueAt } from '../../core/msgpack-fields.ts';
import {
  ARRAY,
  BIN,
  BOOL,
  EXT,
  FLOAT,
  INT,
  MAP,
  NIL,
  newHeader,
  readHeader,
  STR,
  skipValue,
} from '../../protocol/forward/msgpack-scan.ts';

/**
 * Record fields (id_key, routing_key, index placeholders, the keys a document gets) read from
 * the msgpack bytes, answering exactly what `getPath` on the decoded record answers, or
 * UNSURE where the bytes alone cannot say. core/msgpack-fields.ts's mapGet matches str keys
 * only: a map with a number key (`5`, which the decoded record holds as "5") or a path
 * through an array, binary or ext value (`[0]`, `length`, an EventTime's `sec`) may find
 * something the bytes do not show. Those rare records take the decoding path instead.
 * (core's mapGet could report such keys itself; then this would be a thin wrapper.)
 */

/** Not in the record. */
export const ABSENT = -1;
/** The bytes cannot tell: decode the record. */
export const UNSURE = -2;

const h = newHeader();

/**
 * Where the value at `path` (UTF-8 bytes of each key) in the map at `pos` starts, ABSENT or
 * UNSURE. The last of repeated keys counts, as in the decoded record. Paths holding
 * `__proto__` or `__proto_` (which decoding renames into each other) are the caller's to
 * refuse, see `bytePathUsable`.
 */
export function findPath(src: Uint8Array, pos: number, end: number, path: readonly Uint8Array[]): number {
  let at = pos;
  for (const key of path) {
    at = findKey(src, at, end, key);
    if (at < 0) return at;
  }
  return at;
}

function findKey(src: Uint8Array, pos: number, end: number, key: Uint8Array): number {
  let p = readHeader(src, pos, end, h);
  if (p < 0) return UNSURE;
  if (h.type !== MAP) {
    // A scalar has no fields; an array, binary or ext value becomes an object that may.
    return h.type === STR || h.type === INT || h.type === FLOAT || h.type === BOOL || h.type === NIL
      ? ABSENT
      : UNSURE;
  }
  let found = ABSENT;
  for (let i = h.length; i > 0; i--) {
    p = readHeader(src, p, end, h);
    if (p < 0 || h.type !== STR) return UNSURE;
    let match = h.length === key.length;
    for (let k = 0; match && k < key.length; k++) match = src[p + k] === key[k];
    p += h.length;
    if (match) found = p;
    p = skipValue(src, p, end, Number.POSITIVE_INFINITY);
  }
  return found;
}

/**
 * The value at `pos` where it is a string, number or boolean, as decoding gives it; undefined
 * for anything else (maps, arrays, nil, binary, ext), which no field reader here uses.
 */
export function scalarAt(
  src: Uint8Array,
  pos: number,
  end: number,
): string | number | bigint | boolean | undefined {
  readHeader(src, pos, end, h);
  if (h.type === BOOL) return h.value === 1;
  if (h.type === STR || h.type === INT || h.type === FLOAT) {
    return valueAt(src, pos, end) as string | number | bigint;
  }
  return undefined;
}

/**
 * Whether a configured path can be read from the bytes: decoding renames a `__proto__` key
 * to `__proto_`, and a `__proto__` step walks into Object.prototype.
 */
export function bytePathUsable(path: readonly string[]): boolean {
  return path.every((part) => part !== '__proto__' && part !== '__proto_');
}

/**
 * Which of `keys` the map at `pos` holds at its top level, one bit each (bit i for keys[i]);
 * UNSURE when it has a key that is not a string. Used for `time_key` (kept when the record
 * has it) and `tag_key` (overwritten in place when it has it), on every record: the keys and
 * values most records are made of (short strings, small numbers) are stepped over inline.
 */
export function topLevelKeys(src: Uint8Array, pos: number, end: number, keys: readonly Uint8Array[]): number {
  let p = readHeader(src, pos, end, h);
  if (p < 0 || h.type !== MAP) return UNSURE;
  let found = 0;
  for (let i = h.length; i > 0; i--) {
    if (p >= end) return UNSURE;
    const b = src[p]!;
    let at: number;
    let length: number;
    if (b >= 0xa0 && b <= 0xbf) {
      at = p + 1;
      length = b & 0x1f;
    } else {
      at = readHeader(src, p, end, h);
      if (at < 0 || h.type !== STR) return UNSURE;
      length = h.length;
    }
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      if (key.length !== length) continue;
      let j = 0;
      while (j < length && src[at + j] === key[j]) j++;
      if (j === length) found |= 1 << k;
    }
    p = skip(src, at + length, end);
  }
  return found;
}

/** Where the value at `p` ends: skipValue, without its set-up for the scalars most values are. */
function skip(src: Uint8Array, p: number, end: number): number {
  const b = p < end ? src[p]! : 0xc1;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return p + 1;
  if (b >= 0xa0 && b <= 0xbf) return p + 1 + (b & 0x1f);
  if (b === 0xd9 && p + 1 < end) return p + 2 + src[p + 1]!;
  if (b === 0xcb) return p + 9;
  const next = readHeader(src, p, end, h);
  if (next < 0 || h.type === MAP || h.type === ARRAY) return skipValue(src, p, end, Number.POSITIVE_INFINITY);
  return h.type === STR || h.type === BIN || h.type === EXT ? next + h.length : next;
}
