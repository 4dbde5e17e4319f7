import { promisify } from 'node:util';
import { gzip as gzipCallback, zstdCompress as zstdCallback } from 'node:zlib';
import type { Chunk, Rejection } from '../output.ts';
import { type Encoded, type EncodedEntry, type EncodeOptions, encodeChunk, entriesOf } from './entries.ts';

/**
 * A chunk's records → the stream records sent (`Unit`s), within the sink's limit on one:
 *
 *   encoded entries ─► groups (one entry each, or `simple`: several, newline-joined)
 *                   ─► compression per group ─► over the limit? halve the group; one entry over
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

export interface PackOptions {
  /** The sink's limit on one record's data, in bytes. */
  maxRecordBytes: number;
  /** `simple`: as many records as fit in one stream record (Fluent Bit's simple_aggregation). */
  aggregation: 'none' | 'simple';
  compression: Compression;
  /** A record over the limit: dead-lettered with the reason, or cut to the limit. */
  oversize: 'reject' | 'truncate';
  /** Names the sink in the reason an oversized record is rejected with. */
  sink: string;
}

/** One stream record: its data, and the entries it carries. */
export interface Unit {
  data: Buffer;
  entries: readonly EncodedEntry[];
  /** Set when the data was cut to fit. */
  truncated?: boolean;
}

export interface Packed {
  units: Unit[];
  /** Records that cannot be encoded or are over the limit. */
  rejected: Rejection[];
  encoded: Encoded;
}

export async function packChunk(chunk: Chunk, encode: EncodeOptions, o: PackOptions): Promise<Packed> {
  const encoded = encodeChunk(chunk, encode);
  const rejected = [...encoded.rejected];
  const units: Unit[] = [];
  for (const group of groups(encoded.entries, o)) await place(encoded.bytes, group, o, units, rejected);
  return { units, rejected, encoded };
}

/** Entries in the order they came, cut where the next would pass the limit (uncompressed). */
function groups(entries: readonly EncodedEntry[], o: PackOptions): EncodedEntry[][] {
  if (o.aggregation === 'none') return entries.map((e) => [e]);
  const out: EncodedEntry[][] = [];
  let current: EncodedEntry[] = [];
  let bytes = 0;
  for (const e of entries) {
    const size = e.end - e.start;
    if (current.length > 0 && bytes + size > o.maxRecordBytes) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(e);
    bytes += size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

async function place(
  bytes: Buffer,
  group: EncodedEntry[],
  o: PackOptions,
  units: Unit[],
  rejected: Rejection[],
): Promise<void> {
  const first = group[0]!;
  const last = group[group.length - 1]!;
  // Entries were written one after the other: a group is one run of the chunk's bytes.
  const raw = bytes.subarray(first.start, last.end);
  const data = o.compression === 'none' ? raw : await COMPRESS[o.compression](raw);
  if (data.length <= o.maxRecordBytes) {
    units.push({ data, entries: group });
    return;
  }
  if (group.length > 1) {
    // Compression made it larger (data that does not compress): two smaller records.
    const half = Math.ceil(group.length / 2);
    await place(bytes, group.slice(0, half), o, units, rejected);
    await place(bytes, group.slice(half), o, units, rejected);
    return;
  }
  if (o.oversize === 'truncate') {
    units.push({ data: await truncate(raw, o), entries: group, truncated: true });
    return;
  }
  rejected.push({
    entry: entriesOf([first])[0]!,
    reason: `a record of ${data.length} bytes${o.compression === 'none' ? '' : ` (${o.compression})`} is over ${o.sink}'s limit of ${o.maxRecordBytes} bytes per record`,
  });
}

/**
 * The record cut to the limit at a UTF-8 character boundary, its newline kept. Compressed data
 * cannot be cut, so the text is cut until its compressed form fits.
 */
async function truncate(raw: Buffer, o: PackOptions): Promise<Buffer> {
  const newline = raw[raw.length - 1] === 0x0a;
  let keep = o.maxRecordBytes - (newline ? 1 : 0);
  for (;;) {
    const cut = utf8Cut(raw, Math.min(keep, raw.length - (newline ? 1 : 0)));
    const text = newline ? Buffer.concat([raw.subarray(0, cut), NEWLINE]) : raw.subarray(0, cut);
    if (o.compression === 'none') return text;
    const data = await COMPRESS[o.compression](text);
    if (data.length <= o.maxRecordBytes) return data;
    // Incompressible text grows a little: cut what it is over by, and a margin for the framing.
    keep = cut - (data.length - o.maxRecordBytes) - 64;
  }
}

const NEWLINE = Buffer.from('\n');

/** The largest length ≤ `n` that does not split a UTF-8 character. */
function utf8Cut(bytes: Buffer, n: number): number {
  let at = Math.max(0, n);
  while (at > 0 && at < bytes.length && (bytes[at]! & 0xc0) === 0x80) at--;
  return at;
}
