import { isUtf8 } from 'node:buffer';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { isArrayIndexKey, isProtoKey } from '../../core/msgpack-fields.ts';
import { writeJson, writeJsonString, writeJsonWithout } from '../../core/msgpack-json.ts';
import {
  ARRAY,
  BIN,
  EXT,
  MAP,
  newHeader,
  readHeader,
  STR,
  skipValue,
} from '../../protocol/forward/msgpack-scan.ts';

/**
 * Fields of a record read, and left out of its JSON, straight from its msgpack bytes, with
 * the answers the decoded record gives (`getPath` and `withoutPath` of core/record-path.ts).
 * Where the bytes alone could answer otherwise than the object, DECODE is thrown and the
 * caller takes the decoded path for that record:
 * - a map key that is not a string (msgpackr makes `1` the key "1", nil "null");
 * - a path that goes through an array, binary or ext value (a path may name their JavaScript
 *   properties: `[0]`, `length`, `sec`);
 * - where a map is rewritten or its keys counted: keys a JavaScript object would reorder or
 *   merge (integer-like, repeated, `__proto__`, invalid UTF-8).
 * Paths naming Object.prototype's properties are the caller's to send the decoded way
 * (`bytesReadable`).
 *
 * Generic (nothing Loki about it): it might belong in core beside msgpack-fields.ts, whose
 * mapGet answers differently from the decoded record for non-string keys and `__proto__`.
 */

/** Thrown where only the decoded record gives the right answer. */
export const DECODE: unique symbol = Symbol('decode');

const h = newHeader();

/** Whether the bytes path answers for `path` as the decoded record would (no prototype names). */
export function bytesReadable(path: readonly string[]): boolean {
  return path.every((part) => !(part in Object.prototype) && part !== '__proto_' && !part.includes('\ufffd'));
}

/** The end of the value at `p`: scalars and short strings without the full scanner. */
function skip(src: Uint8Array, p: number, end: number): number {
  const b = src[p]!;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return p + 1;
  if (b >= 0xa0 && b <= 0xbf) return p + 1 + (b & 0x1f);
  if (b === 0xd9) return p + 2 + src[p + 1]!;
  if (b === 0xcc || b === 0xd0) return p + 2;
  if (b === 0xcd || b === 0xd1) return p + 3;
  if (b === 0xce || b === 0xd2 || b === 0xca) return p + 5;
  if (b === 0xcf || b === 0xd3 || b === 0xcb) return p + 9;
  return skipValue(src, p, end, Number.POSITIVE_INFINITY);
}

/** Whether `src[at, at + length)` is `key`. */
function sameKey(key: Uint8Array, src: Uint8Array, at: number, length: number): boolean {
  if (key.length !== length) return false;
  let i = 0;
  while (i < length && src[at + i] === key[i]) i++;
  return i === length;
}

/** Index of the key equal to `src[at, at + length)` in `keys`, or -1. */
function findKey(keys: readonly Uint8Array[], src: Uint8Array, at: number, length: number): number {
  for (let k = 0; k < keys.length; k++) if (sameKey(keys[k]!, src, at, length)) return k;
  return -1;
}

/** The key readKey read last: module state, so the scans allocate nothing per key. */
let keyAt = 0;
let keyLength = 0;

/** Reads the string key at `p` into `keyAt`/`keyLength`; returns where its value starts. DECODE for other keys. */
function readKey(src: Uint8Array, p: number, end: number): number {
  const b = src[p]!;
  if (b >= 0xa0 && b <= 0xbf) {
    keyAt = p + 1;
    keyLength = b & 0x1f;
  } else {
    const body = readHeader(src, p, end, h);
    if (body < 0 || h.type !== STR) throw DECODE;
    keyAt = body;
    keyLength = h.length;
  }
  const next = keyAt + keyLength;
  if (next > end) throw DECODE;
  return next;
}

// ── reading fields ──────────────────────────────────────────────────────────────────────

interface Node {
  /** Keys of the children, as UTF-8. */
  readonly keys: Buffer[];
  readonly children: Node[];
  /** The slot this node's value goes into, or -1 when only its children are wanted. */
  slot: number;
}

const newNode = (): Node => ({ keys: [], children: [], slot: -1 });

/**
 * Finds the values at several paths of a record in one walk: each map on the way is scanned
 * once, whatever number of paths go through it. A path's value lies at `start[i]` to `end[i]`
 * (the slot given by the constructor's order), -1 when the record has none there.
 */
export class FieldReader {
  readonly start: Int32Array;
  readonly end: Int32Array;
  private readonly root: Node = newNode();

  constructor(paths: readonly (readonly string[])[]) {
    this.start = new Int32Array(paths.length);
    this.end = new Int32Array(paths.length);
    for (const [slot, path] of paths.entries()) {
      let node = this.root;
      for (const part of path) {
        const key = Buffer.from(part, 'utf8');
        let k = node.keys.findIndex((x) => x.equals(key));
        if (k < 0) {
          k = node.keys.push(key) - 1;
          node.children.push(newNode());
        }
        node = node.children[k]!;
      }
      node.slot = slot;
    }
  }

  /** Reads the paths of the record (a map) at `pos`; returns where it ends. Throws DECODE (see the top of this file). */
  read(src: Uint8Array, pos: number, end: number): number {
    this.start.fill(-1);
    this.end.fill(-1);
    return this.scan(src, pos, end, this.root);
  }

  /** Scans the map at `pos`, going into the values paths go through; returns where the map ends. */
  private scan(src: Uint8Array, pos: number, end: number, node: Node): number {
    let p = readHeader(src, pos, end, h);
    const count = h.length;
    for (let i = 0; i < count; i++) {
      p = readKey(src, p, end);
      const k = findKey(node.keys, src, keyAt, keyLength);
      const valueAt = p;
      p = k < 0 || node.children[k]!.keys.length === 0 ? skip(src, p, end) : this.into(src, p, end, node, k);
      if (k < 0) continue;
      const slot = node.children[k]!.slot;
      if (slot >= 0) {
        // A repeated key: the last value counts, as in the decoded record.
        this.start[slot] = valueAt;
        this.end[slot] = p;
      }
    }
    return p;
  }

  /** The value of child `k`, which deeper paths go through: scanned if a map. Returns where it ends. */
  private into(src: Uint8Array, p: number, end: number, node: Node, k: number): number {
    const child = node.children[k]!;
    // Deeper paths found in an earlier value of a repeated key would have to be forgotten.
    if (this.seen(child)) throw DECODE;
    readHeader(src, p, end, h);
    if (h.type === MAP) return this.scan(src, p, end, child);
    if (h.type === ARRAY || h.type === BIN || h.type === EXT) throw DECODE;
    // Strings, numbers, booleans and nil have no fields: the deeper paths find nothing.
    return skip(src, p, end);
  }

  /** Whether a value was found under `node` already. */
  private seen(node: Node): boolean {
    for (const child of node.children) {
      if (child.slot >= 0 && this.start[child.slot]! >= 0) return true;
      if (child.keys.length > 0 && this.seen(child)) return true;
    }
    return false;
  }
}

// ── leaving fields out ──────────────────────────────────────────────────────────────────

/** Keys to leave out of a map: whole (`leaves`), or some of their own keys (`nested`). */
export interface Omission {
  readonly leaves: readonly Uint8Array[];
  readonly nested: readonly { readonly key: Uint8Array; readonly omit: Omission }[];
}

/** The Omission of these paths (a path and one inside it: the outer one wins). */
export function omission(paths: readonly (readonly string[])[]): Omission {
  const leaves = new Set<string>();
  const nested = new Map<string, (readonly string[])[]>();
  for (const [head, ...rest] of paths as (readonly [string, ...string[]])[]) {
    if (rest.length === 0) leaves.add(head);
    else nested.set(head, [...(nested.get(head) ?? []), rest]);
  }
  return {
    leaves: [...leaves].map((k) => Buffer.from(k, 'utf8')),
    nested: [...nested]
      .filter(([k]) => !leaves.has(k))
      .map(([k, rest]) => ({ key: Buffer.from(k, 'utf8'), omit: omission(rest) })),
  };
}

/**
 * The JSON of the map at `pos` without what `omit` names, as writing the decoded record
 * after withoutPath would give. Returns the position after the map. Throws DECODE (nothing
 * kept in `out` then is the caller's to undo), or EncodeError as writeJson does.
 */
export function writeJsonOmitting(
  out: JsonBuffer,
  src: Uint8Array,
  pos: number,
  end: number,
  omit: Omission,
): number {
  if (omit.nested.length === 0) return writeJsonWithout(out, src, pos, end, omit.leaves);
  const first = readHeader(src, pos, end, h);
  const count = h.length;
  if (count > MAX_KEYS) throw DECODE;
  const base = seenTop;
  out.byte(0x7b); // {
  let p = first;
  let written = 0;
  try {
    for (let i = 0; i < count; i++) {
      p = readKey(src, p, end);
      const at = keyAt;
      const length = keyLength;
      checkKey(src, at, length, base);
      if (findKey(omit.leaves, src, at, length) >= 0) {
        p = skip(src, p, end);
        continue;
      }
      if (written++ > 0) out.byte(0x2c); // ,
      writeJsonString(out, src, at, at + length);
      out.byte(0x3a); // :
      const inner = nestedOmission(omit, src, at, length);
      readHeader(src, p, end, h);
      p =
        inner !== undefined && h.type === MAP
          ? writeJsonOmitting(out, src, p, end, inner)
          : writeJson(out, src, p, end);
    }
  } finally {
    seenTop = base;
  }
  out.byte(0x7d); // }
  return p;
}

/** What to leave out of the value of the key at `at`, if anything. */
export function nestedOmission(
  omit: Omission,
  src: Uint8Array,
  at: number,
  length: number,
): Omission | undefined {
  for (const n of omit.nested) if (sameKey(n.key, src, at, length)) return n.omit;
  return undefined;
}

/**
 * How many keys of the map at `pos` remain once `leaves` are left out, as
 * `Object.keys(decoded minus leaves)` counts them; `lastValueAt` is where the value of the last
 * one starts and `lastKeyAt`/`lastKeyLength` its key. Returns where the map ends. Throws DECODE
 * where the count could differ.
 */
export const remaining = { count: 0, lastKeyAt: 0, lastKeyLength: 0, lastValueAt: -1 };

export function countRemaining(
  src: Uint8Array,
  pos: number,
  end: number,
  leaves: readonly Uint8Array[],
): number {
  let p = readHeader(src, pos, end, h);
  const count = h.length;
  if (count > MAX_KEYS) throw DECODE;
  const base = seenTop;
  remaining.count = 0;
  remaining.lastValueAt = -1;
  try {
    for (let i = 0; i < count; i++) {
      p = readKey(src, p, end);
      checkKey(src, keyAt, keyLength, base);
      if (findKey(leaves, src, keyAt, keyLength) < 0) {
        remaining.count += 1;
        remaining.lastKeyAt = keyAt;
        remaining.lastKeyLength = keyLength;
        remaining.lastValueAt = p;
      }
      p = skip(src, p, end);
    }
  } finally {
    seenTop = base;
  }
  return p;
}

/** Wider maps are checked for repeated keys by the decoded path (as core/msgpack-json.ts does). */
const MAX_KEYS = 64;

/** Keys met so far in the maps being walked (start, length), innermost map last. */
const seenAt: number[] = [];
const seenLength: number[] = [];
let seenTop = 0;

/** DECODE for a key a JavaScript object would not keep as it stands, in its place (see the top). */
function checkKey(src: Uint8Array, at: number, length: number, base: number): void {
  let high = false;
  for (let i = at; i < at + length; i++) if (src[i]! >= 0x80) high = true;
  if (high && !isUtf8(src.subarray(at, at + length))) throw DECODE;
  if (isArrayIndexKey(src, at, length) || isProtoKey(src, at, length)) throw DECODE;
  for (let k = base; k < seenTop; k++) {
    if (seenLength[k] !== length) continue;
    const other = seenAt[k]!;
    let i = 0;
    while (i < length && src[other + i] === src[at + i]) i++;
    if (i === length) throw DECODE;
  }
  seenAt[seenTop] = at;
  seenLength[seenTop] = length;
  seenTop++;
}
