import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { RecordEncoder } from '../../../src/outputs/aws-records/encode.ts';
import { packChunk } from '../../../src/outputs/aws-records/pack.ts';
import { kplAggregate, kplBaseCost, kplRecordCost } from '../../../src/outputs/kinesis-streams/kpl.ts';
import { partitionKeyReader } from '../../../src/outputs/kinesis-streams/partition-key.ts';

/** The KPL aggregate's bytes, checked against protobufjs's encoding of the same message. */

const Aggregated = protobuf
  .parse(
    `syntax = "proto2";
    message AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2; repeated Record records = 3; }
    message Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2; required bytes data = 3; }`,
    { keepCase: true },
  )
  .root.lookupType('AggregatedRecord');

describe('KPL aggregated records', () => {
  it('magic, the protobuf protobufjs writes for the same records, and its MD5', () => {
    const data = [Buffer.from('{"a":1}'), Buffer.alloc(0), Buffer.alloc(300, 0x61), Buffer.from('é')];
    const bytes = kplAggregate('pod-ü', data);
    const body = Aggregated.encode(
      Aggregated.create({
        partition_key_table: ['pod-ü'],
        records: data.map((d) => ({ partition_key_index: 0, data: d })),
      }),
    ).finish();
    assert.deepEqual(bytes.subarray(0, 4), Buffer.from([0xf3, 0x89, 0x9a, 0xc2]));
    assert.deepEqual(bytes.subarray(4, bytes.length - 16), Buffer.from(body));
    assert.deepEqual(bytes.subarray(bytes.length - 16), createHash('md5').update(body).digest());
  });

  it('its size is what the packer counts, byte for byte', () => {
    for (const sizes of [[1], [127, 128], [16_383, 16_384, 5], [200_000]]) {
      const data = sizes.map((n) => Buffer.alloc(n, 0x62));
      const key = 'k'.repeat(sizes[0]! % 200);
      const expected = kplBaseCost(Buffer.byteLength(key)) + sizes.reduce((s, n) => s + kplRecordCost(n), 0);
      assert.equal(kplAggregate(key, data).length, expected, String(sizes));
    }
  });

  it('aggregates are filled to the 1 MiB limit with their key, never past it', async () => {
    const entries = Array.from({ length: 3000 }, (_, id) => ({
      time: new EventTime(1_700_000_000, 0),
      record: { id, k: 'one-key', pad: 'p'.repeat(900) },
    }));
    const { units, rejected } = await packChunk(
      makeChunk('c', [makeBatch('t', entries)], 0),
      {
        encoder: new RecordEncoder({
          timeKey: undefined,
          timeKeyFormat: '%s',
          logKey: undefined,
          appendNewline: false,
          replaceDots: undefined,
        }),
        key: partitionKeyReader('k'),
      },
      {
        maxRecordBytes: 1024 * 1024,
        aggregator: { byKey: true, base: kplBaseCost, cost: kplRecordCost, build: kplAggregate },
        compression: 'none',
        oversize: 'reject',
        keyed: true,
        sink: 'Kinesis',
      },
    );
    assert.deepEqual(rejected, []);
    assert.equal(units.length, 3);
    for (const u of units.slice(0, -1)) {
      const total = u.data.length + Buffer.byteLength(u.key);
      assert.ok(total <= 1024 * 1024, `${total} bytes`);
      assert.ok(total > 1024 * 1024 - 1000, `${total} bytes: one more record would not fit`);
    }
    assert.equal(
      units.reduce((n, u) => n + u.entries.length, 0),
      3000,
    );
  });
});
