import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback, zstdCompress as zstdCallback } from 'node:zlib';
import type { Chunk, Rejection } from '../output.ts';
import { type EncodedEntry, type EncodeOptions, encodeChunk, entriesOf } from './entries.ts';

/**
 * A chunk's records → the stream records sent (`Unit`s), within the sink's limit on one:
 *
 *   encoded entries ─► groups: one entry each, or aggregates (Firehose `simple`: newline-joined
 *                      in order; Kinesis `kpl`: by partition key) filled up to the limit
 *                   ─► compression per unit ─► over the limit? halve the group; one entry over
 *                      it is rejected, or truncated with `oversize: truncate`
 *
 * Each unit keeps the entries it holds, so a unit the sink refuses is retried as those entries.
 */

// In libuv's thread pool: compressing a chunk's records on the event loop would stall the inputs.
const COMPRESS = {
  gzip: promisify(gzipCallback),
  zstd: promisify(zstdCallback),
} as const;

export type Compression = 'none' | keyof typeof COMPRESS;

/** How several records become one stream record. */
export interface Aggregator {
  /** Aggregates hold records of one partition key only. */
  readonly byKey: boolean;
  /** The aggregate is its records back to back: a run of the chunk's encoded bytes, not a copy. */
  readonly joined?: boolean;
  /** Bytes of an aggregate under a key of this many bytes before any record. */
  base(keyBytes: number): number;
  /** Bytes one record of this length adds. */
  cost(dataLength: number): number;
  build(key: string, data: readonly Uint8Array[]): Buffer;
}

/** Firehose's: records back to back (each ends in its newline), as S3 will hold them anyway. */
export const SIMPLE: Aggregator = {
  byKey: false,
  joined: true,
  base: () => 0,
  cost: (n) => n,
  build: (_key, data) => Buffer.concat(data),
};

export interface PackOptions {
  /** The sink's limit on one record, in bytes (its data, and its partition key with `keyCounts`). */
  maxRecordBytes: number;
  /** Undefined: one log record per stream record. */
  aggregator: Aggregator | undefined;
  compression: Compression;
  /** A record over the limit: dead-lettered with the reason, or cut to fit. */
  oversize: 'reject' | 'truncate';
  /** The partition key counts against the record limit, and an empty one is made random (Kinesis). */
  keyed: boolean;
  /** Names the sink in the reason an oversized record is rejected with. */
  sink: string;
}

/** One stream record: its data, its partition key (Kinesis), and the entries it carries. */
export interface Unit {
  data: Buffer;
  key: string;
  entries: readonly EncodedEntry[];
  /** Set when the data was cut to fit. */
  truncated?: boolean;
}

export interface Packed {
  units: Unit[];
  /** Records that cannot be encoded or are over the limit. */
  rejected: Rejection[];
}

export async function packChunk(chunk: Chunk, encode: EncodeOptions, o: PackOptions): Promise<Packed> {
  const encoded = encodeChunk(chunk, encode);
  const packer = new Packer(encoded.bytes, o);
  for (const [key, group] of groups(encoded.entries, o)) await packer.place(key, group);
  packer.rejected.unshift(...encoded.rejected);
  return { units: packer.units, rejected: packer.rejected };
}

/** Bytes of a random partition key: fixed, so an aggregate's size is known before the key is. */
const RANDOM_KEY_BYTES = 32;

function randomKey(): string {
  return randomBytes(RANDOM_KEY_BYTES / 2).toString('hex');
}

/** [partition key ('' when it is to be random), entries] per stream record to make. */
function groups(entries: readonly EncodedEntry[], o: PackOptions): [string, EncodedEntry[]][] {
  const agg = o.aggregator;
  if (!agg) return entries.map((e) => [e.key, [e]]);
  const byKey = new Map<string, EncodedEntry[]>();
  if (agg.byKey) {
    for (const e of entries) {
      const list = byKey.get(e.key);
      if (list) list.push(e);
      else byKey.set(e.key, [e]);
    }
  } else {
    byKey.set('', [...entries]);
  }
  const out: [string, EncodedEntry[]][] = [];
  for (const [key, list] of byKey) {
    const keyBytes = key === '' ? RANDOM_KEY_BYTES : Buffer.byteLength(key);
    const room = o.maxRecordBytes - (o.keyed ? keyBytes : 0) - agg.base(keyBytes);
    let current: EncodedEntry[] = [];
    let bytes = 0;
    for (const e of list) {
      const cost = agg.cost(e.end - e.start);
      if (current.length > 0 && bytes + cost > room) {
        out.push([key, current]);
        current = [];
        bytes = 0;
      }
      current.push(e);
      bytes += cost;
    }
    if (current.length > 0) out.push([key, current]);
  }
  return out;
}

class Packer {
  readonly units: Unit[] = [];
  readonly rejected: Rejection[] = [];
  private readonly bytes: Buffer;
  private readonly o: PackOptions;

  constructor(bytes: Buffer, o: PackOptions) {
    this.bytes = bytes;
    this.o = o;
  }

  async place(groupKey: string, group: EncodedEntry[]): Promise<void> {
    const o = this.o;
    const key = o.keyed && groupKey === '' ? randomKey() : groupKey;
    const limit = o.maxRecordBytes - (o.keyed ? Buffer.byteLength(key) : 0);
    const raw = this.raw(key, group);
    const data = o.compression === 'none' ? raw : await COMPRESS[o.compression](raw);
    if (data.length <= limit) {
      this.units.push({ data, key, entries: group });
      return;
    }
    if (group.length > 1) {
      // Compression made it larger (data that does not compress): two smaller records.
      const half = Math.ceil(group.length / 2);
      await this.place(groupKey, group.slice(0, half));
      await this.place(groupKey, group.slice(half));
      return;
    }
    if (o.oversize === 'truncate') {
      this.units.push({
        data: await truncate(raw, limit, o.compression),
        key,
        entries: group,
        truncated: true,
      });
      return;
    }
    const compressed = o.compression === 'none' ? '' : ` (${o.compression})`;
    this.rejected.push({
      entry: entriesOf(group)[0]!,
      reason: `a record of ${data.length} bytes${compressed} is over ${o.sink}'s limit of ${limit} bytes per record${o.keyed ? ' (with its partition key)' : ''}`,
    });
  }

  /** The data of one stream record, uncompressed: a lone record as it is, else the aggregate. */
  private raw(key: string, group: readonly EncodedEntry[]): Buffer {
    const slice = (e: EncodedEntry) => this.bytes.subarray(e.start, e.end);
    const agg = this.o.aggregator;
    if (group.length === 1 || !agg) return slice(group[0]!);
    // Records are encoded one after the other, and a joined group is a run of them in order.
    if (agg.joined) return this.bytes.subarray(group[0]!.start, group[group.length - 1]!.end);
    return agg.build(key, group.map(slice));
  }
}

/**
 * The record cut to `limit` at a UTF-8 character boundary, its newline kept. Compressed data
 * cannot be cut, so the text is cut until its compressed form fits.
 */
async function truncate(raw: Buffer, limit: number, compression: Compression): Promise<Buffer> {
  const newline = raw[raw.length - 1] === 0x0a;
  const body = raw.length - (newline ? 1 : 0);
  let keep = limit - (newline ? 1 : 0);
  for (;;) {
    const cut = utf8Cut(raw, Math.min(keep, body));
    const text = newline ? Buffer.concat([raw.subarray(0, cut), NEWLINE]) : raw.subarray(0, cut);
    if (compression === 'none') return text;
    const data = await COMPRESS[compression](text);
    if (data.length <= limit) return data;
    // Incompressible text grows a little: cut what it is over by, and a margin for the framing.
    keep = cut - (data.length - limit) - 64;
  }
}

const NEWLINE = Buffer.from('\n');

/** The largest length ≤ `n` that does not split a UTF-8 character. */
function utf8Cut(bytes: Buffer, n: number): number {
  let at = Math.max(0, n);
  while (at > 0 && at < bytes.length && (bytes[at]! & 0xc0) === 0x80) at--;
  return at;
}
