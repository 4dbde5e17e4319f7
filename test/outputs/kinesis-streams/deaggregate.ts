import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';
import type { StreamRecord } from '../../support/kinesalite.ts';

/**
 * A KPL de-aggregator written from the aggregated record format's description, sharing nothing
 * with src/: protobufjs reads the message from the .proto text, the MD5 is checked.
 */

// The aggregated record format, as the KPL documents it; nothing here comes from src/.
const AggregatedRecord = protobuf
  .parse(
    `
    syntax = "proto2";
    message AggregatedRecord {
      repeated string partition_key_table = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records = 3;
    }
    message Tag { required string key = 1; optional string value = 2; }
    message Record {
      required uint64 partition_key_index = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes data = 3;
      repeated Tag tags = 4;
    }`,
    { keepCase: true },
  )
  .root.lookupType('AggregatedRecord');

const MAGIC = Buffer.from('f3899ac2', 'hex');

export interface UserRecord {
  partitionKey: string;
  data: Buffer;
  aggregated: boolean;
}

/** As the KCL de-aggregates: magic and a matching MD5 make an aggregate; anything else is one record. */
export function deaggregate(records: readonly StreamRecord[]): UserRecord[] {
  const out: UserRecord[] = [];
  for (const r of records) {
    const body = r.data.subarray(MAGIC.length, r.data.length - 16);
    const digest = r.data.subarray(r.data.length - 16);
    const isAggregate =
      r.data.length > MAGIC.length + 16 &&
      r.data.subarray(0, MAGIC.length).equals(MAGIC) &&
      createHash('md5').update(body).digest().equals(digest);
    if (!isAggregate) {
      out.push({ partitionKey: r.partitionKey, data: r.data, aggregated: false });
      continue;
    }
    const message = AggregatedRecord.toObject(AggregatedRecord.decode(body), {
      longs: Number,
      defaults: true,
    }) as {
      partition_key_table: string[];
      records: { partition_key_index: number; data: Uint8Array }[];
    };
    for (const u of message.records)
      out.push({
        partitionKey: message.partition_key_table[u.partition_key_index]!,
        data: Buffer.from(u.data),
        aggregated: true,
      });
  }
  return out;
}
