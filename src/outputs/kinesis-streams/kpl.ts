import { createHash } from 'node:crypto';

/**
 * The Kinesis Producer Library's aggregated record, so consumers using the KCL (or the
 * kinesis-aggregation libraries, or Lambda with them) see each log record on its own:
 *
 *   0xF3 0x89 0x9A 0xC2 ‖ AggregatedRecord (protobuf) ‖ MD5 of the protobuf bytes (16)
 *
 *   message AggregatedRecord {
 *     repeated string partition_key_table = 1;
 *     repeated string explicit_hash_key_table = 2;   // not used: Kinesis hashes the key
 *     repeated Record records = 3;
 *   }
 *   message Record {
 *     required uint64 partition_key_index = 1;
 *     optional uint64 explicit_hash_key_index = 2;
 *     required bytes data = 3;
 *     repeated Tag tags = 4;                          // not used
 *   }
 *
 * Records are grouped by partition key before they get here, so an aggregate has one key, at
 * index 0, and the aggregate is put under that key (as fluent-plugin-kinesis's
 * kinesis_streams_aggregated does). Written by hand: four fields do not need a protobuf library.
 */

const MAGIC = Buffer.from([0xf3, 0x89, 0x9a, 0xc2]);
const DIGEST = 16;
/** Field 1 (partition_key_table) and 3 (records), length-delimited; field 1 of Record, varint; field 3, bytes. */
const KEY_TABLE = 0x0a;
const RECORDS = 0x1a;
const KEY_INDEX = 0x08;
const DATA = 0x1a;

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  let v = n;
  let p = at;
  while (v >= 0x80) {
    out[p++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[p++] = v;
  return p;
}

/** Bytes of one Record message (key index 0) for data of this length. */
function recordSize(dataLength: number): number {
  return 2 + 1 + varintSize(dataLength) + dataLength;
}

/** Bytes one record of this data length adds to an aggregate. */
export function kplRecordCost(dataLength: number): number {
  const inner = recordSize(dataLength);
  return 1 + varintSize(inner) + inner;
}

/** Bytes of an aggregate with no record yet: magic, the key table, the digest. */
export function kplBaseCost(keyBytes: number): number {
  return MAGIC.length + 1 + varintSize(keyBytes) + keyBytes + DIGEST;
}

/** The aggregated record of these data under one partition key. */
export function kplAggregate(partitionKey: string, data: readonly Uint8Array[]): Buffer {
  const key = Buffer.from(partitionKey, 'utf8');
  let size = kplBaseCost(key.length);
  for (const d of data) size += kplRecordCost(d.length);
  const out = Buffer.allocUnsafe(size);
  MAGIC.copy(out, 0);
  let p = MAGIC.length;
  out[p++] = KEY_TABLE;
  p = writeVarint(out, p, key.length);
  p += key.copy(out, p);
  for (const d of data) {
    out[p++] = RECORDS;
    p = writeVarint(out, p, recordSize(d.length));
    out[p++] = KEY_INDEX;
    out[p++] = 0;
    out[p++] = DATA;
    p = writeVarint(out, p, d.length);
    out.set(d, p);
    p += d.length;
  }
  createHash('md5').update(out.subarray(MAGIC.length, p)).digest().copy(out, p);
  return out;
}
