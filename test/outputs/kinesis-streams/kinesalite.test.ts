import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { LogRecord } from '../../../src/core/entry.ts';
import { HaltError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { kinesisStreamsOutput } from '../../../src/outputs/kinesis-streams/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { Kinesalite } from '../../support/kinesalite.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { settlesWithin } from '../../support/wait.ts';
import { deaggregate, type UserRecord } from './deaggregate.ts';

/**
 * kinesis_streams against kinesalite (a real Kinesis Data Streams API, in memory): records
 * written through the output are read back with GetShardIterator / GetRecords, KPL aggregates
 * de-aggregated by a decoder written here from the format's description (protobufjs reading the
 * .proto, the MD5 checked), and compared with what was sent.
 */

useAwsTestEnv({ region: 'us-east-1' });

const T = new EventTime(1_700_000_000, 250_000_000);
const MiB = 1024 * 1024;

let server: Kinesalite;
const outputs: Output[] = [];
let streams = 0;

before(async () => {
  server = await Kinesalite.start();
});
afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  server.calls.length = 0;
});
after(() => server.close());

/** A fresh stream per test: kinesalite keeps what it was given. */
async function stream(shards = 2): Promise<string> {
  const name = `logs-${++streams}`;
  await server.createStream(name, shards);
  return name;
}

function kinesis(options: Record<string, unknown>): Output {
  const output = kinesisStreamsOutput.create(
    kinesisStreamsOutput.schema.parse({ endpoint: server.url, ...options }),
    {
      id: 'ks',
      logger: silentLogger(),
      metrics: new Metrics(),
      configDir: '/',
    },
  );
  outputs.push(output);
  return output;
}

function chunkOf(records: LogRecord[]): Chunk {
  return makeChunk(
    'c1',
    [
      makeBatch(
        'kube.web',
        records.map((record) => ({ time: T, record })),
      ),
    ],
    0,
  );
}

const pods = ['web-1', 'web-2', 'api-7'];
/** Records with ids; every seventh has no pod (a random partition key). */
const podRecords = (n: number, pad = 0): LogRecord[] =>
  Array.from({ length: n }, (_, id) => ({
    id,
    log: `line ${id} ${'x'.repeat(pad)}`,
    ...(id % 7 === 0 ? {} : { kubernetes: { pod_name: pods[id % pods.length] } }),
  }));

const idOf = (data: Buffer) => (JSON.parse(data.toString()) as { id: number }).id;

function assertPartitionKeys(users: readonly UserRecord[]): void {
  for (const u of users) {
    const record = JSON.parse(u.data.toString()) as { id: number; kubernetes?: { pod_name: string } };
    if (record.kubernetes)
      assert.equal(u.partitionKey, record.kubernetes.pod_name, `record ${record.id}'s key`);
    else assert.match(u.partitionKey, /^[0-9a-f]{32}$/, `record ${record.id}: a random key`);
  }
}

describe('kinesis_streams output against kinesalite', () => {
  it('one Kinesis record per log record, under the partition_key field (random without it)', async () => {
    const name = await stream();
    const records = podRecords(1234);
    const result = await kinesis({ stream: name, partition_key: "$kubernetes['pod_name']" }).write(
      chunkOf(records),
      NO_DEADLINE,
    );
    assert.equal(result, undefined);
    const stored = await server.records(name);
    assert.equal(stored.length, 1234);
    assert.deepEqual(
      server.calls.map((c) => c.records),
      [500, 500, 234],
    );
    const users = deaggregate(stored);
    assert.ok(users.every((u) => !u.aggregated));
    assert.deepEqual(
      users.map((u) => idOf(u.data)).sort((a, b) => a - b),
      records.map((r) => r.id),
    );
    assertPartitionKeys(users);
    assert.deepEqual(JSON.parse(stored[0]!.data.toString()), records[idOf(stored[0]!.data)]);
    // A record's pod always lands on one shard: order per pod is kept.
    const shardOfPod = new Map<string, string>();
    for (const r of stored) {
      if (!pods.includes(r.partitionKey)) continue;
      assert.equal(shardOfPod.get(r.partitionKey) ?? r.shardId, r.shardId);
      shardOfPod.set(r.partitionKey, r.shardId);
    }
  });

  it('aggregation kpl: records of each partition key packed into aggregates the KCL de-aggregates', async () => {
    const name = await stream(3);
    const records = podRecords(5000, 300);
    await kinesis({ stream: name, partition_key: "$kubernetes['pod_name']", aggregation: 'kpl' }).write(
      chunkOf(records),
      NO_DEADLINE,
    );
    const stored = await server.records(name);
    assert.ok(stored.length < 20, `${stored.length} Kinesis records for 5,000 log records`);
    for (const r of stored)
      assert.ok(r.data.length + Buffer.byteLength(r.partitionKey) <= MiB, 'each within 1 MiB with its key');
    const users = deaggregate(stored);
    assert.ok(
      users.every((u) => u.aggregated),
      'every record came in an aggregate',
    );
    assert.deepEqual(
      users.map((u) => idOf(u.data)).sort((a, b) => a - b),
      records.map((r) => r.id),
    );
    assertPartitionKeys(users);
    // Aggregated by key: each aggregate's user records share the key it was put under.
    for (const r of stored) for (const u of deaggregate([r])) assert.equal(u.partitionKey, r.partitionKey);
    // Within a pod, records keep their order.
    for (const pod of pods) {
      const ids = users.filter((u) => u.partitionKey === pod).map((u) => idOf(u.data));
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
      );
    }
  });

  it('aggregation kpl: a lone record of its key is sent as a plain record', async () => {
    const name = await stream(1);
    await kinesis({ stream: name, partition_key: 'k', aggregation: 'kpl' }).write(
      chunkOf([
        { id: 0, k: 'a' },
        { id: 1, k: 'a' },
        { id: 2, k: 'b' },
      ]),
      NO_DEADLINE,
    );
    const stored = await server.records(name);
    assert.deepEqual(
      stored.map((r) => [r.partitionKey, deaggregate([r]).map((u) => [u.aggregated, idOf(u.data)])]),
      [
        [
          'a',
          [
            [true, 0],
            [true, 1],
          ],
        ],
        ['b', [[false, 2]]],
      ],
    );
  });

  it('time_key, log_key and replace_dots encode as for firehose (one shared encoder)', async () => {
    const name = await stream(1);
    await kinesis({
      stream: name,
      time_key: 'ts',
      time_key_format: '%Y-%m-%dT%H:%M:%S.%3NZ',
      replace_dots: '_',
    }).write(chunkOf([{ 'a.b': 1 }]), NO_DEADLINE);
    await kinesis({ stream: name, log_key: 'log', append_newline: true }).write(
      chunkOf([{ log: 'GET /' }]),
      NO_DEADLINE,
    );
    assert.deepEqual(
      (await server.records(name)).map((r) => r.data.toString()),
      ['{"a_b":1,"ts":"2023-11-14T22:13:20.250Z"}', 'GET /\n'],
    );
  });

  it('calls stay within 500 records and 5 MiB with keys; a record over 1 MiB with its key is rejected, or truncated', async () => {
    const name = await stream(2);
    const big = Array.from({ length: 12 }, (_, id) => ({ id, k: 'key', log: 'y'.repeat(900 * 1024) }));
    const over = { id: 99, k: 'key', log: 'z'.repeat(MiB) };
    const result = await kinesis({ stream: name, partition_key: 'k', log_key: 'log' }).write(
      chunkOf([...big, over]),
      NO_DEADLINE,
    );
    assert.equal(result?.reject?.length, 1);
    assert.match(
      result!.reject![0]!.reason,
      /over Kinesis's limit of 1048573 bytes per record \(with its partition key\)/,
    );
    assert.equal((await server.records(name)).length, 12);
    const calls = server.calls.splice(0);
    assert.deepEqual(
      calls.map((c) => c.records),
      [5, 5, 2],
      'five records of 900 KiB to a call of at most 5 MiB',
    );
    for (const c of calls) assert.ok(c.bytes <= 5 * MiB && c.largest <= MiB);
    const cut = await kinesis({
      stream: name,
      partition_key: 'k',
      log_key: 'log',
      oversize: 'truncate',
    }).write(chunkOf([over]), NO_DEADLINE);
    assert.equal(cut, undefined);
    const last = (await server.records(name)).find((r) => r.data.length > 900 * 1024 + 100);
    assert.equal(last?.data.length, MiB - 3, 'cut to 1 MiB less the key');
  });

  it('a stream that does not exist halts, saying what to do', async () => {
    const outcome = await settlesWithin(
      kinesis({ stream: 'missing' }).write(chunkOf([{ a: 1 }]), NO_DEADLINE),
      10_000,
    );
    assert.ok(outcome.error instanceof HaltError, String(outcome.error));
    assert.match(outcome.error.message, /ResourceNotFoundException.*create the stream/);
  });
});
