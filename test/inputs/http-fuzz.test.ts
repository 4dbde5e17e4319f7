import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { inspect, isDeepStrictEqual } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as zlib from 'node:zlib';
import { decodeMulti, ExtData, encode } from '@msgpack/msgpack';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { pack } from '../../src/core/msgpack.ts';
import { isWholeValue } from '../../src/protocol/forward/msgpack-scan.ts';
import { startEstuary } from '../support/estuary.ts';
import { RawHttp } from '../support/http.ts';
import { Gen, header as mpHeader, map as mpMap, rng } from '../support/msgpack-gen.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * Issue 12: random and mutated requests against a live HTTP input, in every content type and
 * content-encoding it takes, while a good sender posts known records on its own connection.
 * Each request is generated from (seed, index) alone, so a failure names what to replay:
 * HTTP_FUZZ_SEED=<seed> (and HTTP_FUZZ_REQUESTS for the count).
 */

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SEED = Number(process.env.HTTP_FUZZ_SEED ?? 12);
const REQUESTS = Number(process.env.HTTP_FUZZ_REQUESTS ?? 3000);
const CONCURRENCY = 8;
/** No request may take this long; a request still unanswered then is a hang. */
const REQUEST_TIMEOUT_MS = 10_000;

// Small limits, so bodies just over them are cheap to send.
const MAX_BODY = 64 * 1024;
const MAX_DECOMPRESSED = 256 * 1024;
const MAX_DEPTH = 32;

// ---------------------------------------------------------------------------------------------
// Seeded generation

/** Seeded choices over the shared PRNG. */
class Rand {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = rng(seed);
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Rec = Record<string, Json>;

// Quotes, backslashes, control characters, the form's own `=&%+`, multi-byte UTF-8 and
// U+2028: everything an encoder or a splitter could get wrong.
const PIECES = [
  'a',
  'Zz',
  ' ',
  '"',
  '\\',
  '\n',
  '\t',
  '\u0000',
  '=',
  '&',
  '%2',
  '+',
  'é',
  '日本',
  '🎉',
  '\u2028',
  '{',
  ']',
  '/',
];

function text(r: Rand, max = 12): string {
  let s = '';
  for (let n = r.int(max); n > 0; n--) s += r.pick(PIECES);
  return s;
}

function value(r: Rand, depth: number): Json {
  switch (r.int(depth >= 3 ? 5 : 7)) {
    case 0:
      return text(r);
    case 1:
      return r.int(2_000_000) - 1_000_000;
    case 2:
      // Binary fractions survive JSON and float64 exactly; never -0.
      return (r.int(2_000_000) - 1_000_001) / 64;
    case 3:
      return r.chance(0.5);
    case 4:
      return null;
    case 5:
      return Array.from({ length: r.int(4) }, () => value(r, depth + 1));
    default: {
      const o: Rec = {};
      for (let n = r.int(3); n > 0; n--) o[`n${n}${text(r, 3)}`] = value(r, depth + 1);
      return o;
    }
  }
}

/**
 * A record with an id; keys never `time` or `date`, which the input would take as the time.
 * Some keys are one or two characters, escapes among them: V8's JSON.parse once read those wrong.
 */
function record(r: Rand, id: string): Rec {
  const rec: Rec = { id };
  for (let n = r.int(5); n > 0; n--) {
    const key = r.chance(0.3) ? r.pick(PIECES) + (r.chance(0.5) ? r.pick(PIECES) : '') : `k${n}${text(r, 4)}`;
    rec[key] = value(r, 1);
  }
  return rec;
}

function records(r: Rand, id: string, n: number): Rec[] {
  return Array.from({ length: n }, (_, j) => record(r, `${id}-${j}`));
}

// ---------------------------------------------------------------------------------------------
// Bodies

type Format = 'json' | 'msgpack' | 'form';

const JSON_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'Application/JSON',
  'application/x-ndjson',
  'application/ndjson',
  'application/jsonl',
  'application/vnd.api+json',
];
const MSGPACK_TYPES = ['application/msgpack', 'application/x-msgpack', 'application/vnd.msgpack'];
const FORM_TYPES = ['application/x-www-form-urlencoded', undefined];
const UNSUPPORTED_TYPES = [
  'text/plain',
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/json/x',
  'image/png',
];

/** One stored entry a request must give. */
interface Want {
  record: Rec;
  /** Event time seconds, when the request set it. */
  sec?: number;
  nsec?: number;
  metadata?: Rec;
}

interface Content {
  format: Format;
  /** The body before any content-encoding. */
  bytes: Buffer;
  want: Want[];
}

function jsonContent(r: Rand, recs: Rec[]): Content {
  let text: string;
  const shape = recs.length === 1 ? r.int(4) : 1 + r.int(3);
  if (shape === 0) text = JSON.stringify(recs[0]);
  else if (shape === 1) text = JSON.stringify(recs, null, r.chance(0.2) ? 1 : undefined);
  // Fluent Bit's json_lines / NDJSON, with CRLF sometimes and a trailing newline or not.
  else if (shape === 2)
    text =
      recs.map((x) => JSON.stringify(x)).join(r.chance(0.3) ? '\r\n' : '\n') + (r.chance(0.5) ? '\n' : '');
  // json_stream: values back to back.
  else text = recs.map((x) => JSON.stringify(x)).join('');
  return { format: 'json', bytes: Buffer.from(text), want: recs.map((record) => ({ record })) };
}

/** Fluentd's EventTime, ext 0. */
function eventTime(sec: number, nsec: number): ExtData {
  const data = new Uint8Array(8);
  const view = new DataView(data.buffer);
  view.setUint32(0, sec);
  view.setUint32(4, nsec);
  return new ExtData(0, data);
}

function msgpackContent(r: Rand, recs: Rec[]): Content {
  const shape = r.int(4);
  const plain = recs.map((record) => ({ record }));
  if (shape === 0)
    return { format: 'msgpack', bytes: Buffer.concat(recs.map((x) => encode(x))), want: plain };
  if (shape === 1) return { format: 'msgpack', bytes: Buffer.from(encode(recs)), want: plain };
  if (shape === 2 && recs.length > 0) {
    // Arrays of maps back to back.
    const half = r.int(recs.length);
    return {
      format: 'msgpack',
      bytes: Buffer.concat([encode(recs.slice(0, half)), encode(recs.slice(half))]),
      want: plain,
    };
  }
  // Fluent Bit's chunk entries, with group markers now and then (skipped, not stored).
  const want: Want[] = [];
  const parts: Uint8Array[] = [];
  const marker = (sec: number) => encode([[eventTime(sec, 0), {}], {}]);
  if (r.chance(0.3)) parts.push(marker(0xffffffff));
  for (const record of recs) {
    const sec = 1_600_000_000 + r.int(100_000_000);
    if (r.chance(0.5)) {
      parts.push(encode([sec, record]));
      want.push({ record, sec, nsec: 0 });
    } else {
      const nsec = r.int(1_000_000_000);
      const metadata: Rec = { m: text(r, 3) };
      parts.push(encode([[eventTime(sec, nsec), metadata], record]));
      want.push({ record, sec, nsec, metadata });
    }
  }
  if (r.chance(0.3)) parts.push(marker(0xfffffffe));
  return { format: 'msgpack', bytes: Buffer.concat(parts), want };
}

/** Percent-encodes every byte that is not unreserved: binary msgpack included. */
function percent(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).padStart(2, '0').toUpperCase()}`;
  }
  return out;
}

function formContent(r: Rand, recs: Rec[]): Content {
  const field = r.int(3);
  const inner = field === 2 ? msgpackContent(r, recs) : jsonContent(r, field === 1 ? recs : recs.slice(0, 1));
  // An empty field is a missing one (400): no records is `[]`.
  if (inner.bytes.length === 0) inner.bytes = field === 2 ? Buffer.from(encode([])) : Buffer.from('[]');
  const name = ['json', 'ndjson', 'msgpack'][field]!;
  const parts = [`${name}=${percent(inner.bytes)}`];
  if (r.chance(0.3)) parts.unshift(`other=${percent(Buffer.from(text(r)))}`);
  return { format: 'form', bytes: Buffer.from(parts.join('&')), want: inner.want };
}

function content(r: Rand, format: Format, recs: Rec[]): Content {
  if (format === 'json') return jsonContent(r, recs);
  if (format === 'msgpack') return msgpackContent(r, recs);
  return formContent(r, recs);
}

function contentType(r: Rand, format: Format): string | undefined {
  if (format === 'json') return r.pick(JSON_TYPES);
  if (format === 'msgpack') return r.pick(MSGPACK_TYPES);
  return r.pick(FORM_TYPES);
}

interface Coding {
  header: string | undefined;
  encode: (b: Buffer) => Buffer;
}

const IDENTITY: Coding = { header: undefined, encode: (b) => b };
const GZIP: Coding = { header: 'gzip', encode: (b) => zlib.gzipSync(b) };
const ZLIB: Coding = { header: 'deflate', encode: (b) => zlib.deflateSync(b) };
const ZSTD: Coding = { header: 'zstd', encode: (b) => zlib.zstdCompressSync(b) };
const CODINGS: Coding[] = [
  IDENTITY,
  IDENTITY,
  IDENTITY,
  { header: 'identity', encode: (b) => b },
  GZIP,
  { header: 'x-gzip', encode: (b) => zlib.gzipSync(b) },
  { header: 'GZIP', encode: (b) => zlib.gzipSync(b) },
  ZLIB,
  // Raw deflate, which enough clients send as "deflate".
  { header: 'deflate', encode: (b) => zlib.deflateRawSync(b) },
  // Quality 4: the default 11 takes seconds over a 16 MiB bomb.
  {
    header: 'br',
    encode: (b) => zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }),
  },
  ZSTD,
  // Applied in the order listed: deflate first, then gzip.
  { header: 'deflate, gzip', encode: (b) => zlib.gzipSync(zlib.deflateSync(b)) },
];
const COMPRESSED = CODINGS.filter((c) => c.header !== undefined && c.header !== 'identity');

// ---------------------------------------------------------------------------------------------
// What a request must get

type Expect =
  /** 2xx, and exactly these entries stored. */
  | { is: 'accept'; want: Want[] }
  /** 2xx or 4xx; if 2xx, exactly this many records stored (an independent decoder's count). */
  | { is: 'count'; count: number }
  /** 4xx (this status, when given). */
  | { is: 'reject'; status?: number }
  /** 2xx or 4xx. */
  | { is: 'any' }
  /** Over a size limit: 413, or the connection closed before the client could read one. */
  | { is: 'too-large' };

interface Case {
  what: string;
  body: Buffer;
  contentType?: string | undefined;
  contentEncoding?: string | undefined;
  query?: string;
  /** Sent chunked, in this many pieces, instead of with a Content-Length. */
  pieces?: number;
  /** Only headers, with this Content-Length, and no body. */
  declaredOnly?: number;
  /** Written as it is on a connection of its own: malformed framing. */
  raw?: string;
  expect: Expect;
}

function isPlainMap(v: unknown): v is Rec {
  if (typeof v !== 'object' || v === null) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Records in one top-level JSON value, or 'reject' when it is not an object or an array of them. */
function jsonValueCount(v: unknown): number | 'reject' {
  if (isPlainMap(v)) return 1;
  if (Array.isArray(v) && v.every(isPlainMap)) return v.length;
  return 'reject';
}

/**
 * What a body should get, judged by decoders other than the input's: JSON.parse whole or line
 * by line, @msgpack/msgpack for msgpack. Only what they can tell for sure is asserted; the
 * input may refuse more (nesting depth, ext types), never accept differently.
 */
function oracle(format: Format, bytes: Buffer): Expect {
  if (format === 'json') {
    const body = bytes.toString('utf8');
    try {
      const n = jsonValueCount(JSON.parse(body));
      return n === 'reject' ? { is: 'reject' } : { is: 'count', count: n };
    } catch {}
    let count = 0;
    for (const line of body.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const n = jsonValueCount(JSON.parse(line));
        if (n === 'reject') return { is: 'any' };
        count += n;
      } catch {
        return { is: 'any' };
      }
    }
    return count > 0 ? { is: 'count', count } : { is: 'any' };
  }
  if (format === 'msgpack') {
    let items: unknown[];
    try {
      items = [...decodeMulti(bytes)];
    } catch {
      return { is: 'any' };
    }
    let count = 0;
    for (const item of items) {
      if (isPlainMap(item)) count += 1;
      else if (Array.isArray(item)) {
        if (item.length === 0) continue;
        // [time, record] entries (and group markers): left to the input.
        if (!isPlainMap(item[0])) return { is: 'any' };
        if (!item.every(isPlainMap)) return { is: 'reject' };
        count += item.length;
      } else {
        // A scalar, binary, a timestamp or another ext at the top: not a record.
        return { is: 'reject' };
      }
    }
    return { is: 'count', count };
  }
  return { is: 'any' };
}

/** Decodes what `coding` encoded, for the oracle; undefined when it does not decode. */
function undo(coding: Coding, bytes: Buffer): Buffer | undefined {
  try {
    switch (coding.header?.toLowerCase()) {
      case undefined:
      case 'identity':
        return bytes;
      case 'gzip':
      case 'x-gzip':
        return zlib.gunzipSync(bytes);
      case 'br':
        return zlib.brotliDecompressSync(bytes);
      case 'zstd':
        return zlib.zstdDecompressSync(bytes);
      default:
        // deflate's zlib-or-raw guess, and stacked codings: not worth redoing here.
        return undefined;
    }
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations

const INTERESTING = [
  0xc1, 0x00, 0xff, 0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x5c, 0x0a, 0xd9, 0xdb, 0xdd, 0xdf, 0xc9, 0xc7, 0xd4, 0x80,
  0xef,
];

function mutate(r: Rand, input: Buffer): { bytes: Buffer; how: string } {
  if (input.length === 0) return { bytes: r.bytes(1 + r.int(16)), how: 'random' };
  const b = Buffer.from(input);
  const at = r.int(b.length);
  switch (r.int(7)) {
    case 0:
      return { bytes: b.subarray(0, at), how: `truncated at ${at}` };
    case 1:
      for (let k = 1 + r.int(4); k > 0; k--) b[r.int(b.length)]! ^= 1 << r.int(8);
      return { bytes: b, how: 'bit flips' };
    case 2:
      for (let k = 1 + r.int(3); k > 0; k--) b[r.int(b.length)] = r.pick(INTERESTING);
      return { bytes: b, how: 'interesting bytes' };
    case 3:
      return {
        bytes: Buffer.concat([b.subarray(0, at), r.bytes(1 + r.int(32)), b.subarray(at)]),
        how: `inserted at ${at}`,
      };
    case 4:
      return {
        bytes: Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + r.int(64))]),
        how: `cut at ${at}`,
      };
    case 5:
      return {
        bytes: Buffer.concat([b.subarray(0, at), b.subarray(at - r.int(at + 1)), b.subarray(at)]),
        how: `repeated at ${at}`,
      };
    default:
      return { bytes: Buffer.concat([b, b.subarray(at)]), how: 'tail repeated' };
  }
}

// ---------------------------------------------------------------------------------------------
// msgpack pieces by hand: what @msgpack/msgpack will not write

const mp = {
  str: (s: string) => Buffer.concat([Buffer.from([0xd9, Buffer.byteLength(s)]), Buffer.from(s)]),
  /** A one-key map `{k: <value bytes>}`. */
  record: (valueBytes: Uint8Array, key = 'k') =>
    Buffer.concat([Buffer.from([0x81]), mp.str(key), valueBytes]),
  u32: (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  },
};

/** Headers announcing far more than follows: str32, bin32, array32, map32, ext32, and 16-bit ones. */
function hugeHeader(r: Rand): Buffer {
  const length = r.pick([0xffffffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0x10000, 70_000]);
  const tail = r.bytes(r.int(8));
  switch (r.int(7)) {
    case 0:
      return Buffer.concat([Buffer.from([0xdb]), mp.u32(length), tail]);
    case 1:
      return Buffer.concat([Buffer.from([0xc6]), mp.u32(length), tail]);
    case 2:
      return Buffer.concat([Buffer.from([0xdd]), mp.u32(length), tail]);
    case 3:
      return Buffer.concat([Buffer.from([0xdf]), mp.u32(length), tail]);
    case 4:
      return Buffer.concat([Buffer.from([0xc9]), mp.u32(length), Buffer.from([r.int(256)]), tail]);
    case 5:
      return Buffer.concat([Buffer.from([0xdc, 0xff, 0xff]), tail]);
    default:
      return Buffer.concat([Buffer.from([0xde, 0xff, 0xff]), tail]);
  }
}

/** An ext the input does not take: any type but 0 and -1, or those at a wrong length. */
function unknownExt(r: Rand): Buffer {
  let type = r.int(256);
  let length = r.pick([1, 2, 4, 8, 16, 3, 0, 200]);
  if (type === 0 && length === 8) length = 4;
  if (type === 0xff && (length === 4 || length === 8)) type = 0x05;
  const data = r.bytes(length);
  const fixed = [1, 2, 4, 8, 16].indexOf(length);
  if (fixed >= 0) return Buffer.concat([Buffer.from([0xd4 + fixed, type]), data]);
  return Buffer.concat([Buffer.from([0xc7, length, type]), data]);
}

/** A record nested `depth` containers deep in all, itself counted (the input's limit is on this). */
function deepRecord(depth: number, kind: 'object' | 'array'): Rec {
  if (kind === 'object') {
    let rec: Rec = { leaf: 1 };
    for (let d = 1; d < depth; d++) rec = { a: rec };
    return rec;
  }
  let inner: Json = [1];
  for (let d = 2; d < depth; d++) inner = [inner];
  return { a: inner };
}

/** The same far deeper, as bytes: no encoder (nor JSON.stringify) has to recurse that far. */
function deepBytes(depth: number, kind: 'object' | 'array', json: boolean): Buffer {
  if (json) {
    if (kind === 'object')
      return Buffer.from(`${'{"a":'.repeat(depth - 1)}{"leaf":1}${'}'.repeat(depth - 1)}`);
    return Buffer.from(`{"a":${'['.repeat(depth - 2)}[1]${']'.repeat(depth - 2)}}`);
  }
  const open = Buffer.from(kind === 'object' ? [0x81, 0xa1, 0x61] : [0x91]);
  const inner = Buffer.alloc((depth - 2) * open.length);
  for (let i = 0; i < depth - 2; i++) open.copy(inner, i * open.length);
  const leaf = Buffer.from(kind === 'object' ? [0x81, 0xa4, 0x6c, 0x65, 0x61, 0x66, 0x01] : [0x91, 0x01]);
  return Buffer.concat([Buffer.from([0x81, 0xa1, 0x61]), inner, leaf]);
}

/** JSON `[{"id": …, "pad": "xxx…"}]` of exactly `size` bytes. */
function sizedJson(id: string, size: number): { bytes: Buffer; want: Want[] } {
  const empty = JSON.stringify([{ id, pad: '' }]);
  const record: Rec = { id, pad: 'x'.repeat(size - empty.length) };
  return { bytes: Buffer.from(JSON.stringify([record])), want: [{ record }] };
}

// ---------------------------------------------------------------------------------------------
// The catalogue: one case from (seed, index)

const FORMATS: Format[] = ['json', 'json', 'msgpack', 'msgpack', 'form'];

/** A valid body, encoded, within max_body_size and max_decompressed_size. */
function valid(r: Rand, id: string, format = r.pick(FORMATS), coding = r.pick(CODINGS)) {
  let n = r.chance(0.05) ? 1 + r.int(2000) : r.chance(0.1) ? 0 : 1 + r.int(30);
  for (;;) {
    const c = content(r, format, records(r, id, n));
    const wire = coding.encode(c.bytes);
    if (wire.length <= MAX_BODY && c.bytes.length <= MAX_DECOMPRESSED)
      return { ...c, wire, coding, contentType: contentType(r, format) };
    n = Math.floor(n / 2);
  }
}

const bombs = new Map<Coding, Buffer>();

/** 16 MiB of zeros, compressed once per coding. */
function bomb(coding: Coding): Buffer {
  let b = bombs.get(coding);
  if (!b) {
    b = coding.encode(Buffer.alloc(16 << 20));
    bombs.set(coding, b);
  }
  return b;
}

function generate(index: number): Case {
  const c = generateCase(index);
  // Percent-encoding triples a form, a mutation can grow a body: past the limit, 413 it is.
  if (c.body.length > MAX_BODY) c.expect = { is: 'too-large' };
  return c;
}

function generateCase(index: number): Case {
  const r = new Rand(SEED * 1_000_003 + index);
  const id = `f${index}`;
  const kind = r.int(100);

  if (kind < 17) {
    // Valid, in every shape, content type and encoding: must be stored exactly.
    const v = valid(r, id);
    const c: Case = {
      what: `valid ${v.format} ${v.contentType} ${v.coding.header}`,
      body: v.wire,
      contentType: v.contentType,
      contentEncoding: v.coding.header,
      expect: { is: 'accept', want: v.want },
    };
    if (r.chance(0.2)) c.pieces = 1 + r.int(5);
    if (r.chance(0.15)) {
      // ?time= sets the time of every record, entries' own times included.
      const sec = 1_700_000_000 + r.int(1000);
      c.query = `time=${sec}.25`;
      c.expect = { is: 'accept', want: v.want.map((w) => ({ ...w, sec, nsec: 250_000_000 })) };
    }
    return c;
  }

  if (kind < 20) {
    // A valid body under odd but readable content types, or with a junk query string.
    const v = valid(r, id, r.pick(['json', 'msgpack'] as const));
    if (r.chance(0.5)) {
      const base = v.format === 'json' ? 'application/json' : 'application/msgpack';
      const as = r.pick([
        `${base};`,
        ` ${base} `,
        `${base.toUpperCase()}; charset="utf-8"`,
        `${base};charset=utf-8;;x=y`,
        `${base}; q=0.5, text/plain`,
      ]);
      return {
        what: `${v.format} as "${as}"`,
        body: v.wire,
        contentType: as,
        contentEncoding: v.coding.header,
        expect: { is: 'accept', want: v.want },
      };
    }
    const query = r.pick([
      'time=',
      'time=abc',
      'time=-1',
      'time=1e400',
      'time=%ZZ',
      'time=1&time=x',
      'time[]=1',
      'x=%ZZ&y',
      '&&&=',
      'time=2024-02-30T25:00:00Z',
      'time=99999999999999999999',
    ]);
    return {
      what: `query ${query}`,
      body: v.wire,
      contentType: v.contentType,
      contentEncoding: v.coding.header,
      query,
      expect: { is: 'count', count: v.want.length },
    };
  }

  if (kind < 45) {
    // A valid body mutated before encoding (the encoding holds, the content does not), or
    // after (the encoding breaks, or lies about the content).
    const v = valid(r, id);
    const before = v.coding === IDENTITY || r.chance(0.5);
    if (before) {
      const m = mutate(r, v.bytes);
      return {
        what: `mutated ${v.format} (${m.how}) ${v.contentType} ${v.coding.header}`,
        body: v.coding.encode(m.bytes),
        contentType: v.contentType,
        contentEncoding: v.coding.header,
        expect: oracle(v.format, m.bytes),
      };
    }
    const m = mutate(r, v.wire);
    const decoded = undo(v.coding, m.bytes);
    return {
      what: `mutated ${v.coding.header} ${v.format} (${m.how}) ${v.contentType}`,
      body: m.bytes,
      contentType: v.contentType,
      contentEncoding: v.coding.header,
      expect: decoded ? oracle(v.format, decoded) : { is: 'any' },
    };
  }

  if (kind < 49) {
    // msgpack maps written byte by byte in every width, with keys an object reorders, merges
    // or renames, broken UTF-8, binary, EventTimes and timestamps: each map one record.
    const g = new Gen(SEED * 1_000_003 + index);
    const n = 1 + g.int(5);
    const array = g.int(2) === 0;
    if (array) mpHeader(g, n, 0x90, 0xdc, 0xdd);
    for (let i = 0; i < n; i++) mpMap(g, 0);
    const coding = r.pick(CODINGS);
    return {
      what: `msgpack-gen ${n} maps${array ? ' in an array' : ''} ${coding.header}`,
      body: coding.encode(g.take()),
      contentType: r.pick(MSGPACK_TYPES),
      contentEncoding: coding.header,
      expect: { is: 'count', count: n },
    };
  }

  if (kind < 52) {
    // Random bytes under any content type and encoding header.
    const bytes = r.bytes(r.int(r.chance(0.2) ? 8000 : 300));
    const format = r.pick(FORMATS);
    const coding = r.pick(CODINGS);
    const plain = coding.header === undefined || coding.header === 'identity';
    return {
      what: `random bytes as ${format} ${coding.header}`,
      body: bytes,
      contentType: contentType(r, format),
      contentEncoding: coding.header,
      expect: plain && bytes.length > 0 ? oracle(format, bytes) : { is: 'any' },
    };
  }

  if (kind < 60) {
    // msgpack that only a careless reader takes: huge lengths, 0xC1, unknown ext types, keys
    // that are containers. All refused, whether at the top or inside a record.
    const which = r.int(4);
    let inner: Buffer;
    let what: string;
    if (which === 0) [inner, what] = [hugeHeader(r), 'huge length header'];
    else if (which === 1) [inner, what] = [Buffer.from([0xc1]), '0xC1'];
    else if (which === 2) [inner, what] = [unknownExt(r), 'unknown ext'];
    else
      [inner, what] = [
        Buffer.concat([
          Buffer.from([0x81]),
          r.pick([
            Buffer.from([0x80]),
            Buffer.from([0x90]),
            Buffer.from([0xc4, 0x01, 0x61]),
            Buffer.from([0xd4, 0x00, 0x00]),
          ]),
          Buffer.from([0x01]),
        ]),
        'container key',
      ];
    const top = r.chance(0.3);
    const body = top ? inner : Buffer.concat([Buffer.from([0x92]), encode({ ok: 1 }), mp.record(inner)]);
    const coding = r.pick(CODINGS);
    const form = r.chance(0.3);
    return {
      what: `msgpack ${what}${top ? ' at the top' : ' in a record'}${form ? ' in a form' : ''} ${coding.header}`,
      body: coding.encode(form ? Buffer.from(`msgpack=${percent(body)}`) : body),
      contentType: form ? r.pick(FORM_TYPES) : r.pick(MSGPACK_TYPES),
      contentEncoding: coding.header,
      expect: { is: 'reject', status: 400 },
    };
  }

  if (kind < 64) {
    // msgpack values that are not records at the top (or among records): refused. And what a
    // record may hold: timestamps, EventTime, 64-bit integers, scalar keys: stored.
    const notRecords = [
      mp.str('text'),
      Buffer.from([0x05]),
      Buffer.from([0xc0]),
      Buffer.from([0xc4, 0x02, 0x7b, 0x7d]),
      Buffer.from([0xd6, 0xff, 0x65, 0x00, 0x00, 0x00]),
      Buffer.from([0xd7, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]),
      Buffer.from([0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
    ];
    if (r.chance(0.1)) {
      // Timestamps past what a JavaScript Date holds (±8.64e15 ms), or with nanoseconds past 1e9:
      // decoded to an Invalid Date, they were stored as an ext Estuary's own reader refuses.
      const ts = Buffer.from([0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      if (r.chance(0.3)) ts.writeUInt32BE(1_000_000_000 + r.int(1e9), 3);
      else ts.writeBigInt64BE(r.pick([2n ** 63n - 1n, -(2n ** 63n), 8_640_000_000_000n, 2n ** 48n]), 7);
      return {
        what: `msgpack timestamp out of range ${ts.toString('hex')}`,
        body: Buffer.concat([Buffer.from([0x82]), mp.str('id'), mp.str(id), mp.str('t'), ts]),
        contentType: r.pick(MSGPACK_TYPES),
        expect: { is: 'reject', status: 400 },
      };
    }
    if (r.chance(0.5)) {
      const bad = r.pick(notRecords);
      const body = r.chance(0.5) ? bad : Buffer.concat([Buffer.from([0x92]), encode({ ok: 1 }), bad]);
      return {
        what: `msgpack non-record ${bad.toString('hex')}`,
        body,
        contentType: r.pick(MSGPACK_TYPES),
        expect: { is: 'reject', status: 400 },
      };
    }
    const values = [
      Buffer.from([0xd6, 0xff, 0x65, 0x00, 0x00, 0x00]),
      Buffer.from([0xd7, 0xff, 0x00, 0x00, 0x00, 0x04, 0x65, 0x00, 0x00, 0x00]),
      Buffer.concat([Buffer.from([0xc7, 0x0c, 0xff, 0, 0, 0, 1]), Buffer.from([0, 0, 0, 0, 0x65, 0, 0, 0])]),
      Buffer.from([0xd7, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]),
      Buffer.from([0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      Buffer.from([0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from([0xca, 0x7f, 0xc0, 0, 0]),
    ];
    const keys = [
      Buffer.from([0x07]),
      Buffer.from([0xc0]),
      Buffer.from([0xc3]),
      Buffer.from([0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]),
      mp.str('k'),
    ];
    const body = Buffer.concat([Buffer.from([0x82]), mp.str('id'), mp.str(id), r.pick(keys), r.pick(values)]);
    return {
      what: `msgpack odd value ${body.toString('hex')}`,
      body,
      contentType: r.pick(MSGPACK_TYPES),
      expect: { is: 'count', count: 1 },
    };
  }

  if (kind < 70) {
    // Nesting around max_nesting_depth, and far past it (no stack may overflow), closed or not.
    const depth = r.pick([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 1000, 8000]);
    const shape = r.pick(['object', 'array'] as const);
    const json = r.chance(0.5);
    const closed = r.chance(0.8);
    const coding = r.pick(CODINGS);
    const what = `${json ? 'JSON' : 'msgpack'} ${shape}s ${depth} deep${closed ? '' : ', unclosed'} ${coding.header}`;
    const type = json ? 'application/json' : 'application/msgpack';
    if (depth <= MAX_DEPTH && closed) {
      const record = deepRecord(depth, shape);
      const body = json ? Buffer.from(JSON.stringify(record)) : Buffer.from(encode(record));
      return {
        what,
        body: coding.encode(body),
        contentType: type,
        contentEncoding: coding.header,
        expect: { is: 'accept', want: [{ record }] },
      };
    }
    let body = deepBytes(depth, shape, json);
    if (!closed) body = body.subarray(0, body.length - (json ? depth - 1 : 4));
    return {
      what,
      body: coding.encode(body),
      contentType: type,
      contentEncoding: coding.header,
      expect: { is: 'reject', status: 400 },
    };
  }

  if (kind < 75) {
    // Invalid UTF-8 in keys and values (lone continuation bytes, overlong forms, encoded
    // surrogates, truncated sequences): taken with replacement characters, never a 5xx.
    const bad = r.pick([
      [0xff],
      [0x80],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xe6, 0x97],
      [0xf4, 0x90, 0x80, 0x80],
      [0xfe, 0xfe],
    ]);
    const json = r.chance(0.5);
    let body: Buffer;
    if (json) {
      const parts = [
        Buffer.from(`[{"id":"${id}","v":"a`),
        Buffer.from(bad),
        Buffer.from('b"},{"k'),
        Buffer.from(bad),
        Buffer.from('":1}]'),
      ];
      body = Buffer.concat(parts);
    } else {
      const s = Buffer.concat([Buffer.from('a'), Buffer.from(bad), Buffer.from('b')]);
      const str = Buffer.concat([Buffer.from([0xa0 | s.length]), s]);
      body = Buffer.concat([
        Buffer.from([0x92, 0x82]),
        mp.str('id'),
        mp.str(id),
        mp.str('v'),
        str,
        Buffer.from([0x81]),
        str,
        Buffer.from([0x01]),
      ]);
    }
    const coding = r.pick(CODINGS);
    return {
      what: `invalid UTF-8 ${Buffer.from(bad).toString('hex')} in ${json ? 'JSON' : 'msgpack'} ${coding.header}`,
      body: coding.encode(body),
      contentType: json ? 'application/json' : 'application/msgpack',
      contentEncoding: coding.header,
      expect: { is: 'count', count: 2 },
    };
  }

  if (kind < 81) {
    // The wrong content type for the body, or one the input does not take.
    const v = valid(r, id, r.pick(['json', 'msgpack'] as const), IDENTITY);
    const which = r.int(3);
    if (which === 0 && v.bytes.length > 0) {
      // JSON read as msgpack is a stream of small integers; msgpack read as JSON starts with no brace.
      const as = v.format === 'json' ? r.pick(MSGPACK_TYPES) : 'application/json';
      return {
        what: `${v.format} sent as ${as}`,
        body: v.wire,
        contentType: as,
        expect: { is: 'reject', status: 400 },
      };
    }
    if (which === 1) {
      const as = r.pick(UNSUPPORTED_TYPES);
      return {
        what: `${v.format} sent as ${as}`,
        body: v.wire,
        contentType: as,
        // An empty body is nothing to store, whatever its type.
        expect: v.wire.length === 0 ? { is: 'accept', want: [] } : { is: 'reject', status: 415 },
      };
    }
    // As a form (or with no content type): taken only if it happens to hold a json= field.
    const as = r.pick(FORM_TYPES);
    return {
      what: `${v.format} sent as form ${as}`,
      body: v.wire,
      contentType: as,
      expect: v.wire.includes('=') || v.wire.length === 0 ? { is: 'any' } : { is: 'reject', status: 400 },
    };
  }

  if (kind < 87) {
    // Content-Encoding that lies: says one thing, is another (or nothing), or is unknown.
    const v = valid(r, id, r.pick(['json', 'msgpack'] as const), IDENTITY);
    if (v.bytes.length === 0)
      return {
        what: 'empty, gzip',
        body: v.bytes,
        contentEncoding: 'gzip',
        contentType: v.contentType,
        expect: { is: 'accept', want: [] },
      };
    const which = r.int(4);
    if (which === 0) {
      // Compressed, and not said so: gzip starts 0x1f, zlib 0x78, zstd 0x28: no brace, no map.
      const coding = r.pick([GZIP, ZLIB, ZSTD]);
      return {
        what: `${coding.header} sent as identity`,
        body: coding.encode(v.bytes),
        contentType: v.contentType,
        expect: { is: 'reject', status: 400 },
      };
    }
    if (which === 1) {
      // Said to be gzip or zstd, and not: both check their magic bytes.
      const said = r.pick(['gzip', 'zstd']);
      const actual = r.pick(CODINGS.filter((c) => !c.header?.toLowerCase().includes(said)));
      return {
        what: `${actual.header} sent as ${said}`,
        body: actual.encode(v.bytes),
        contentType: v.contentType,
        contentEncoding: said,
        expect: { is: 'reject', status: 400 },
      };
    }
    if (which === 2) {
      const said = r.pick(['deflate', 'br', 'gzip, br', 'br, deflate']);
      const actual = r.pick(CODINGS);
      return {
        what: `${actual.header} sent as ${said}`,
        body: actual.encode(v.bytes),
        contentType: v.contentType,
        contentEncoding: said,
        expect: actual.header === said ? { is: 'accept', want: v.want } : { is: 'any' },
      };
    }
    const said = r.pick(['compress', 'x-bzip2', 'gzip;q=1', '*', 'gzip, snappy', 'lz4']);
    return {
      what: `content-encoding ${said}`,
      body: zlib.gzipSync(v.bytes),
      contentType: v.contentType,
      contentEncoding: said,
      expect: { is: 'reject', status: 415 },
    };
  }

  if (kind < 95) {
    // Size limits: at them (taken), just over (413), and far over (413, perhaps unread).
    const which = r.int(6);
    const format = r.chance(0.5) ? 'application/json' : 'application/x-ndjson';
    if (which === 0) {
      const s = sizedJson(id, MAX_BODY);
      return {
        what: 'raw body exactly max_body_size',
        body: s.bytes,
        contentType: format,
        pieces: r.chance(0.5) ? 3 : undefined,
        expect: { is: 'accept', want: s.want },
      };
    }
    if (which === 1) {
      const s = sizedJson(id, MAX_BODY + 1 + r.int(64));
      return {
        what: `raw body ${s.bytes.length} bytes`,
        body: s.bytes,
        contentType: format,
        pieces: r.chance(0.5) ? 1 + r.int(4) : undefined,
        expect: { is: 'too-large' },
      };
    }
    if (which === 2) {
      return {
        what: 'Content-Length far over max_body_size, no body',
        body: Buffer.alloc(0),
        contentType: format,
        declaredOnly: r.pick([MAX_BODY + 1, 10 * MAX_BODY, 1e12]),
        expect: { is: 'too-large' },
      };
    }
    const coding = r.pick(COMPRESSED);
    if (which === 3) {
      const s = sizedJson(id, MAX_DECOMPRESSED);
      return {
        what: `decompressed exactly max_decompressed_size, ${coding.header}`,
        body: coding.encode(s.bytes),
        contentType: format,
        contentEncoding: coding.header,
        expect: { is: 'accept', want: s.want },
      };
    }
    if (which === 4) {
      const s = sizedJson(id, MAX_DECOMPRESSED + 1 + r.int(64));
      return {
        what: `decompressed ${s.bytes.length} bytes, ${coding.header}`,
        body: coding.encode(s.bytes),
        contentType: format,
        contentEncoding: coding.header,
        expect: { is: 'reject', status: 413 },
      };
    }
    return {
      what: `16 MiB bomb, ${coding.header}`,
      body: bomb(coding),
      contentType: format,
      contentEncoding: coding.header,
      expect: { is: 'reject', status: 413 },
    };
  }

  if (kind < 98) {
    // Forms: a bad time field, no known field, an empty one.
    const v = valid(r, id, 'json', IDENTITY);
    const which = r.int(3);
    if (which === 0)
      return {
        what: 'form with a bad time',
        body: Buffer.from(`json=${percent(v.bytes)}&time=${r.pick(['abc', '-5', '1e5', '99999999999999'])}`),
        contentType: r.pick(FORM_TYPES),
        expect: { is: 'reject', status: 400 },
      };
    if (which === 1)
      return {
        what: 'form without json=',
        body: Buffer.from(`jsn=${percent(v.bytes)}&x=1`),
        contentType: r.pick(FORM_TYPES),
        expect: { is: 'reject', status: 400 },
      };
    const m = mutate(r, Buffer.from(`json=${percent(v.bytes)}`));
    return {
      what: `mutated form (${m.how})`,
      body: m.bytes,
      contentType: r.pick(FORM_TYPES),
      expect: { is: 'any' },
    };
  }

  // Malformed HTTP framing, on a connection of its own: Node's parser refuses it.
  const head = (extra: string) =>
    `POST /fuzz.${index} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${extra}\r\n`;
  const raw = r.pick([
    `${head('content-length: -1\r\n')}{}`,
    `${head('content-length: abc\r\n')}{}`,
    `${head('content-length: 2\r\ncontent-length: 3\r\n')}{}`,
    `${head('content-length: 2\r\ntransfer-encoding: chunked\r\n')}2\r\n{}\r\n0\r\n\r\n`,
    `${head('transfer-encoding: chunked\r\n')}zz\r\n{}\r\n0\r\n\r\n`,
    `${head('transfer-encoding: chunked\r\n')}2\r\n{}xx\r\n0\r\n\r\n`,
  ]);
  return {
    what: `malformed framing ${JSON.stringify(raw.slice(raw.indexOf('\r\n\r\n') - 40))}`,
    body: Buffer.alloc(0),
    raw,
    expect: { is: 'reject', status: 400 },
  };
}

// ---------------------------------------------------------------------------------------------
// Sending

type Outcome = { status: number; body: string } | { dropped: string } | { hang: true };

function send(agent: Agent, port: number, path: string, c: Case, sockets?: Set<Socket>): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(o);
    };
    const headers: Record<string, string | number> = {};
    if (c.contentType !== undefined) headers['content-type'] = c.contentType;
    if (c.contentEncoding !== undefined) headers['content-encoding'] = c.contentEncoding;
    if (c.declaredOnly !== undefined) headers['content-length'] = c.declaredOnly;
    else if (c.pieces === undefined) headers['content-length'] = c.body.length;
    const req = request({ agent, host: '127.0.0.1', port, method: 'POST', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', (err) => done({ dropped: `response: ${err.message}` }));
    });
    const timer = setTimeout(() => {
      done({ hang: true });
      req.destroy();
    }, REQUEST_TIMEOUT_MS);
    req.on('error', (err: Error & { code?: string }) => done({ dropped: err.code ?? err.message }));
    req.on('socket', (socket) => sockets?.add(socket));
    if (c.declaredOnly !== undefined) {
      req.flushHeaders();
      return;
    }
    if (c.pieces === undefined) {
      req.end(c.body);
      return;
    }
    const size = Math.ceil(c.body.length / c.pieces);
    for (let at = 0; at < c.body.length; at += size) req.write(c.body.subarray(at, at + size));
    req.end();
  });
}

async function sendRaw(port: number, raw: string): Promise<Outcome> {
  const conn = await RawHttp.open(port);
  try {
    await conn.write(raw);
    const res = await waitFor(() => conn.response() ?? (conn.closed ? 'closed' : undefined), {
      timeoutMs: REQUEST_TIMEOUT_MS,
      what: 'an answer',
    }).catch(() => 'hang' as const);
    if (res === 'hang') return { hang: true };
    if (res === 'closed') return { dropped: 'closed without an answer' };
    return { status: res.status, body: res.body };
  } finally {
    conn.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Judging

const show = (v: unknown) => inspect(v, { depth: 6, breakLength: Number.POSITIVE_INFINITY }).slice(0, 400);

const isRejection = (status: number) => status >= 400 && status < 500;

/** What a fuzz request must get, kept without its body. */
interface Sent {
  what: string;
  /** The body's first bytes, in hex, to name it in a failure. */
  head: string;
  expect: Expect;
  /** Entries an accepted request must store (its `want` is let go once they all match). */
  wanted: number;
}

/** What was stored under one request's tag, checked as it arrived. */
interface Stored {
  count: number;
  /** The first difference from what the request must store. */
  mismatch?: string;
}

const entryView = (e: TaggedEntry, w: Want | undefined) => ({
  record: e.record,
  sec: w?.sec === undefined ? undefined : e.time.sec,
  nsec: w?.nsec === undefined ? undefined : e.time.nsec,
  metadata: e.metadata,
});
const wantView = (w: Want) => ({ record: w.record, sec: w.sec, nsec: w.nsec, metadata: w.metadata });

/**
 * Takes what reaches the sink as it comes and checks it there, keeping counts, not records:
 * held to the end, the records would be the largest thing in this process's memory, and it
 * is this process's RSS that tells whether the input leaks.
 */
class Ledger {
  readonly sent: Sent[] = [];
  readonly stored = new Map<number, Stored>();
  /** The good sender's records sent and not yet stored, by id. */
  readonly goodPending = new Map<string, Want>();
  goodStored = 0;
  total = 0;
  readonly problems: string[] = [];

  take(entries: readonly TaggedEntry[]): void {
    for (const entry of entries) {
      this.total++;
      // Stored records must be msgpack Estuary itself takes back: an output may forward them.
      if (!isWholeValue(pack(entry.record), 10_000))
        this.problems.push(`a record of ${entry.tag} is stored as msgpack Estuary's own reader refuses`);
      if (entry.tag === 'good') {
        this.takeGood(entry);
        continue;
      }
      const i = Number(/^fuzz\.(\d+)$/.exec(entry.tag)?.[1] ?? Number.NaN);
      const sent = this.sent[i];
      if (!sent) {
        this.problems.push(`a record stored under ${entry.tag}, where nothing was posted`);
        continue;
      }
      const stored = this.stored.get(i) ?? { count: 0 };
      this.stored.set(i, stored);
      const n = stored.count++;
      if (sent.expect.is !== 'accept' || stored.mismatch !== undefined) continue;
      const want = sent.expect.want[n];
      const got = entryView(entry, want);
      if (!want || !isDeepStrictEqual(got, wantView(want)))
        stored.mismatch = `entry ${n}: ${show(got)} vs ${want ? show(wantView(want)) : 'none'}`;
      else if (n + 1 === sent.wanted) sent.expect = { is: 'accept', want: [] };
    }
  }

  private takeGood(entry: TaggedEntry): void {
    const id = String(entry.record.id);
    const want = this.goodPending.get(id);
    if (!want) this.problems.push(`good record ${id} stored twice, or never sent`);
    else if (!isDeepStrictEqual(entry.record, want.record))
      this.problems.push(`good record ${id} stored as ${show(entry.record)}, sent ${show(want.record)}`);
    this.goodPending.delete(id);
    this.goodStored++;
  }
}

/** Problems with one request's answer and what was stored for it; none when it is right. */
function judge(c: Sent, o: Outcome, stored: Stored): string[] {
  const problems: string[] = [];
  if ('hang' in o) return [`no answer within ${REQUEST_TIMEOUT_MS} ms`];
  if ('dropped' in o) {
    if (c.expect.is !== 'too-large') problems.push(`connection dropped without an answer (${o.dropped})`);
    if (stored.count > 0) problems.push(`${stored.count} records stored from a dropped request`);
    return problems;
  }
  const ok = o.status >= 200 && o.status < 300;
  if (!ok && !isRejection(o.status)) return [`answered ${o.status}: ${o.body.trim()}`];
  if (!ok) {
    if (o.body.trim() === '') problems.push(`answered ${o.status} with no reason`);
    if (stored.count > 0)
      problems.push(`answered ${o.status} (${o.body.trim()}) yet ${stored.count} records stored`);
  }
  const e = c.expect;
  if (e.is === 'accept') {
    if (!ok) problems.push(`a valid body answered ${o.status}: ${o.body.trim()}`);
    else if (stored.count !== c.wanted || stored.mismatch)
      problems.push(`stored ${stored.count} entries for the ${c.wanted} sent; ${stored.mismatch ?? ''}`);
  } else if (e.is === 'count') {
    if (ok && stored.count !== e.count)
      problems.push(`answered ${o.status} and stored ${stored.count} records, the body holds ${e.count}`);
  } else if (e.is === 'reject') {
    if (!isRejection(o.status) || (e.status !== undefined && o.status !== e.status))
      problems.push(`expected ${e.status ?? '4xx'}, answered ${o.status}: ${o.body.trim()}`);
  } else if (e.is === 'too-large') {
    if (o.status !== 413) problems.push(`a body over max_body_size answered ${o.status}: ${o.body.trim()}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

describe('http input — fuzz against a live Estuary', () => {
  it(`random and mutated bodies (seed ${SEED}, ${REQUESTS} requests): every one answered 2xx/4xx, stored exactly as answered; a good sender loses nothing; memory bounded`, async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  shutdown_timeout: 2s
inputs:
  - type: http
    id: in
    listen: 127.0.0.1
    port: ${port}
    max_body_size: ${MAX_BODY}
    max_decompressed_size: ${MAX_DECOMPRESSED}
    max_nesting_depth: ${MAX_DEPTH}
outputs:
  - type: scripted
    id: fuzz_sink
    buffer: { flush_interval: 100ms }
`);
    const sink = scriptedInstances.get('fuzz_sink')!;
    // After a full collection, so that what is sampled is what is held, not garbage not yet collected.
    const memory = async () => {
      gc();
      const rss = sample(await e.metrics(), 'process_resident_memory_bytes').value;
      return { rss, heap: process.memoryUsage().heapUsed };
    };
    // The bombs' 16 MiB buffers are made now, not in the middle of the samples.
    for (const coding of COMPRESSED) bomb(coding);
    const fuzzAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const goodAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const started = performance.now();
    const ledger = new Ledger();
    const drain = setInterval(() => ledger.take(sink.delivered.splice(0)), 20);
    try {
      // The good sender: known records, one request at a time on its own keep-alive connection.
      let fuzzing = true;
      let goodSent = 0;
      const goodFailures: string[] = [];
      const goodSockets = new Set<Socket>();
      const good = (async () => {
        const r = new Rand(SEED ^ 0x600d);
        for (let n = 0; fuzzing || n < 50; n++) {
          const format = (['json', 'msgpack', 'form'] as const)[n % 3]!;
          const coding = n % 4 === 3 ? GZIP : IDENTITY;
          const c = content(r, format, records(r, `g${n}`, 1 + r.int(20)));
          for (const w of c.want) ledger.goodPending.set(String(w.record.id), w);
          const req: Case = {
            what: `good ${n}`,
            body: coding.encode(c.bytes),
            contentType: contentType(r, format),
            contentEncoding: coding.header,
            expect: { is: 'accept', want: c.want },
          };
          const o = await send(goodAgent, port, '/good', req, goodSockets);
          if (!('status' in o) || o.status !== 200)
            goodFailures.push(`good request ${n}: ${JSON.stringify(o)}`);
          else goodSent += c.want.length;
        }
      })();

      const outcomes: Outcome[] = new Array(REQUESTS);
      const samples: { rss: number; heap: number }[] = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < REQUESTS) {
            const i = next++;
            const c = generate(i);
            // The body is let go once sent.
            const head = (c.raw ? Buffer.from(c.raw) : c.body).subarray(0, 48).toString('hex');
            const wanted = c.expect.is === 'accept' ? c.expect.want.length : 0;
            ledger.sent[i] = { what: c.what, head, expect: c.expect, wanted };
            const path = `/fuzz.${i}${c.query ? `?${c.query}` : ''}`;
            outcomes[i] =
              c.raw !== undefined ? await sendRaw(port, c.raw) : await send(fuzzAgent, port, path, c);
            if (i % 250 === 0) samples.push(await memory());
          }
        }),
      );
      fuzzing = false;
      await good;
      const fuzzMs = performance.now() - started;

      // Every 2xx was answered once its records were buffered: wait until the sink has had them all.
      const accepted = async () =>
        sample(await e.metrics(), 'fluentd_input_status_num_records_total', { plugin_id: 'in' }).value;
      await waitFor(
        async () => {
          ledger.take(sink.delivered.splice(0));
          return ledger.total === (await accepted());
        },
        { timeoutMs: 10_000, what: 'every accepted record delivered' },
      );
      samples.push(await memory());

      const failures = ledger.problems.map((p) => `seed ${SEED}: ${p}`);
      const tally = new Map<string, number>();
      for (let i = 0; i < REQUESTS; i++) {
        const c = ledger.sent[i]!;
        const o = outcomes[i]!;
        const key = 'status' in o ? String(o.status) : 'dropped' in o ? 'dropped' : 'hang';
        tally.set(key, (tally.get(key) ?? 0) + 1);
        for (const p of judge(c, o, ledger.stored.get(i) ?? { count: 0 }))
          failures.push(`seed ${SEED} case ${i} [${c.what}] body ${c.head}…: ${p}`);
      }
      const mib = (b: number) => Math.round(b / 1048576);
      console.log(
        `seed ${SEED}: ${REQUESTS} fuzz requests in ${Math.round(fuzzMs)} ms, answers ${JSON.stringify(Object.fromEntries([...tally].sort()))}; ` +
          `good sender ${goodSent} records; every 250 requests, RSS MiB ${samples.map((m) => mib(m.rss)).join(' ')}, heap MiB ${samples.map((m) => mib(m.heap)).join(' ')}`,
      );
      assert.deepEqual(failures.slice(0, 30), [], `${failures.length} failures`);

      assert.deepEqual(goodFailures, [], `seed ${SEED}: the good sender was refused`);
      assert.equal(goodSockets.size, 1, `seed ${SEED}: the good sender kept its one connection`);
      assert.deepEqual([...ledger.goodPending.keys()], [], `seed ${SEED}: good records never stored`);
      assert.equal(ledger.goodStored, goodSent, `seed ${SEED}: the good sender's records stored once each`);

      assert.equal((await fetch(e.healthz)).status, 200);
      assert.equal(await e.readyz(), 200);
      // After the first third (the heap and the allocator's pools grown to their working size),
      // a leak per request shows as growth to the end: the heap tells it to a few MiB; RSS,
      // which the allocator gives back late if at all, only to the size of a blowup.
      const third = Math.ceil(samples.length / 3);
      const growth = (of: (m: { rss: number; heap: number }) => number) =>
        Math.max(...samples.slice(third).map(of)) - Math.max(...samples.slice(0, third).map(of));
      assert.ok(
        growth((m) => m.heap) < 32 * 1048576,
        `seed ${SEED}: heap grew ${mib(growth((m) => m.heap))} MiB after the first third`,
      );
      assert.ok(
        growth((m) => m.rss) < 128 * 1048576,
        `seed ${SEED}: RSS grew ${mib(growth((m) => m.rss))} MiB after the first third`,
      );
    } finally {
      clearInterval(drain);
      fuzzAgent.destroy();
      goodAgent.destroy();
      await e.stop();
    }
  });
});
