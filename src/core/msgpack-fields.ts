import { MAP, newHeader, readHeader, STR, skipValue } from '../protocol/forward/msgpack-scan.ts';
import { unpackStream } from './msgpack.ts';

/**
 * Fields of a record read from its msgpack bytes, for what an output routes by (an index
 * name, a label, an id) without decoding the whole record. A key matches by its UTF-8 bytes;
 * where a key repeats, the last one counts, as in the decoded record.
 */

const h = newHeader();

/** Where the value of `key` in the map at `pos` starts, or -1 (no such key, or not a map). */
export function mapGet(src: Uint8Array, pos: number, end: number, key: Uint8Array): number {
  let p = readHeader(src, pos, end, h);
  if (p < 0 || h.type !== MAP) return -1;
  let found = -1;
  for (let i = h.length; i > 0; i--) {
    const keyAt = p;
    p = readHeader(src, keyAt, end, h);
    if (p < 0) return -1;
    let match = false;
    if (h.type === STR && h.length === key.length) {
      match = true;
      for (let k = 0; k < key.length; k++) {
        if (src[p + k] !== key[k]) {
          match = false;
          break;
        }
      }
    }
    p = skipValue(src, keyAt, end, Number.POSITIVE_INFINITY);
    if (match) found = p;
    p = skipValue(src, p, end, Number.POSITIVE_INFINITY);
  }
  return found;
}

/** mapGet along a path of keys (`kubernetes.labels.app` as three). */
export function pathGet(src: Uint8Array, pos: number, end: number, path: readonly Uint8Array[]): number {
  let at = pos;
  for (const key of path) {
    at = mapGet(src, at, end, key);
    if (at < 0) return -1;
  }
  return at;
}

/** The value at `pos` decoded, as the decoded record would hold it. */
export function valueAt(src: Uint8Array, pos: number, end: number): unknown {
  const stop = skipValue(src, pos, end, Number.POSITIVE_INFINITY);
  return unpackStream(src.subarray(pos, stop))[0];
}

/** A configured key path as the byte strings mapGet compares. */
export function keyPath(path: readonly string[]): Uint8Array[] {
  return path.map((part) => Buffer.from(part, 'utf8'));
}

/**
 * A key that is a canonical array index (0 … 2^32 − 2): a JavaScript object lists such keys
 * first, in ascending order, so a map holding one does not keep its order once decoded.
 */
export function isArrayIndexKey(src: Uint8Array, at: number, length: number): boolean {
  if (length === 0 || length > 10 || (length > 1 && src[at] === 0x30)) return false;
  let v = 0;
  for (let i = at; i < at + length; i++) {
    const c = src[i]!;
    if (c < 0x30 || c > 0x39) return false;
    v = v * 10 + (c - 0x30);
  }
  return v <= 0xfffffffe;
}

const PROTO = Buffer.from('__proto__');

/** `__proto__`, which the decoder renames `__proto_` (a key by that name would set the prototype). */
export function isProtoKey(src: Uint8Array, at: number, length: number): boolean {
  if (length !== PROTO.length) return false;
  for (let i = 0; i < length; i++) if (src[at + i] !== PROTO[i]) return false;
  return true;
}
