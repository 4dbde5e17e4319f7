import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { type Batch, encodeEntry, makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { HaltError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { eventTimeBytes } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import type { Output } from '../../../src/outputs/output.ts';
import { s3Output } from '../../../src/outputs/s3/index.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { S3rverServer, useTestCredentials } from '../../support/s3rver.ts';

/** Through a real S3-compatible server (s3rver), read back with the official client. */

useTestCredentials();

// 2023-11-14T22:13:20Z and an hour later.
const T = new EventTime(1_700_000_000, 123_456_789);
const T2 = new EventTime(1_700_003_600, 5);

let server: S3rverServer;
let bucketSeq = 0;
const outputs: Output[] = [];

before(async () => {
  server = await S3rverServer.start();
});

after(async () => {
  for (const o of outputs) await o.stop?.();
  await server.stop();
});

async function newBucket(): Promise<string> {
  const name = `logs-${++bucketSeq}`;
  await server.createBucket(name);
  return name;
}

/** An output writing records as they were sent (no `date` added) unless the test says otherwise. */
function s3(options: Record<string, unknown>, metrics = new Metrics()): Output {
  const output = s3Output.create(
    s3Output.schema.parse({ endpoint: server.url, force_path_style: true, json_date_key: false, ...options }),
    { id: 's3.test', logger: silentLogger(), metrics, configDir: '/' },
  );
  outputs.push(output);
  return output;
}

function records(n: number, tag: string, time = T, from = 0): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    time,
    record: { seq: from + i, tag, msg: `GET /item/${from + i} 200`, nested: { ok: true, n: i } },
  }));
}

describe('s3 output against s3rver', () => {
  it('keys follow the default template; objects are gzip JSON lines with their content headers', async () => {
    const bucket = await newBucket();
    const output = s3({ bucket, json_date_key: 'date' });
    await output.start?.();
    const chunk = makeChunk(
      'c-keys',
      [
        makeBatch('app.web', records(3, 'app.web')),
        makeBatch('app.api', records(2, 'app.api')),
        makeBatch('app.web', records(1, 'app.web', T2, 3)),
      ],
      0,
    );
    assert.equal(await output.write(chunk, NO_DEADLINE), undefined);
    assert.deepEqual(await server.keys(bucket), [
      'estuary/app.api/dt=2023-11-14/22/c-keys-1.json.gz',
      'estuary/app.web/dt=2023-11-14/22/c-keys-0.json.gz',
      'estuary/app.web/dt=2023-11-14/23/c-keys-2.json.gz',
    ]);
    const object = await server.get(bucket, 'estuary/app.web/dt=2023-11-14/22/c-keys-0.json.gz');
    assert.equal(object.contentType, 'application/x-ndjson');
    assert.equal(object.contentEncoding, 'gzip');
    // The time is added under json_date_key (Fluent Bit's default: `date`, ISO 8601 to the microsecond).
    assert.deepEqual(
      await server.records(bucket, 'estuary/app.web/dt=2023-11-14/22/c-keys-0.json.gz'),
      records(3, 'app.web').map((e) => ({ ...e.record, date: '2023-11-14T22:13:20.123456Z' })),
    );
  });

  it('every record arrives once: 5,000 records of 5 tags over 3 hours, downloaded and counted', async () => {
    const bucket = await newBucket();
    const metrics = new Metrics();
    const output = s3({ bucket, key_format: 'logs/$TAG[1]/%Y/%m/%d/%H/${chunk_id}.json.gz' }, metrics);
    await output.start?.();
    const batches: Batch[] = [];
    const sent: Record<string, unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const tag = `app.svc${i % 5}`;
      const time = new EventTime(1_700_000_000 + (i % 3) * 3600, i);
      const entries = records(100, tag, time, i * 100);
      sent.push(...entries.map((e) => e.record));
      batches.push(makeBatch(tag, entries));
    }
    assert.equal(await output.write(makeChunk('c-count', batches, 0), NO_DEADLINE), undefined);
    const keys = await server.keys(bucket);
    assert.equal(keys.length, 15, keys.join('\n'));
    for (const key of keys) assert.match(key, /^logs\/svc\d\/2023\/11\/1[45]\/\d\d\/c-count-\d+\.json\.gz$/);
    const got = (await Promise.all(keys.map((k) => server.records(bucket, k)))).flat();
    const bySeq = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      (a.seq as number) - (b.seq as number);
    assert.equal(got.length, 5000);
    assert.deepEqual(got.sort(bySeq), sent.sort(bySeq));
    // estuary_s3_objects_total and estuary_s3_object_bytes count the same 15 objects.
    const text = await metrics.registry.metrics();
    assert.match(text, /estuary_s3_objects_total\{plugin_id="s3\.test",type="s3",result="ok"\} 15/);
    assert.match(text, /estuary_s3_object_bytes_count\{plugin_id="s3\.test",type="s3"\} 15/);
  });

  it('$TAG[n] on custom delimiters, $UUID fixed by the chunk, ${hostname}, uncompressed', async () => {
    const bucket = await newBucket();
    const output = s3({
      bucket,
      key_format: '$TAG[0]/$TAG[2]/${hostname}/%Y%m%d-$UUID.jsonl',
      key_format_tag_delimiters: '.-',
      compression: 'none',
    });
    await output.start?.();
    const chunk = makeChunk('c-uuid', [makeBatch('kube.var-log', records(4, 'kube.var-log'))], 0);
    assert.equal(await output.write(chunk, NO_DEADLINE), undefined);
    const keys = await server.keys(bucket);
    assert.equal(keys.length, 1);
    const host = hostname().replace(/[/\\]/g, '_');
    assert.match(
      keys[0]!,
      new RegExp(
        `^kube/log/${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/20231114-[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\\.jsonl$`,
      ),
    );
    const object = await server.get(bucket, keys[0]!);
    assert.equal(object.contentEncoding, undefined);
    assert.equal(object.body.toString().split('\n').length, 5, 'four lines, each ending in \\n');
    // A retry of the same chunk makes the same key.
    assert.equal(await output.write(makeChunk('c-uuid', chunk.batches, 1), NO_DEADLINE), undefined);
    assert.deepEqual(await server.keys(bucket), keys);
  });

  it("record fields in the key: Hive partitions by $kubernetes['namespace_name']", async () => {
    const bucket = await newBucket();
    const output = s3({
      bucket,
      key_format: "k8s/ns=$kubernetes['namespace_name']/dt=%Y-%m-%d/${chunk_id}.json.gz",
    });
    await output.start?.();
    const entries = ['shop', 'auth', 'shop', 'shop'].map((ns, i) => ({
      time: T,
      record: { i, kubernetes: { namespace_name: ns, pod_name: `p${i}` } },
    }));
    assert.equal(
      await output.write(makeChunk('c-ns', [makeBatch('kube.var.log', entries)], 0), NO_DEADLINE),
      undefined,
    );
    assert.deepEqual(await server.keys(bucket), [
      'k8s/ns=auth/dt=2023-11-14/c-ns-1.json.gz',
      'k8s/ns=shop/dt=2023-11-14/c-ns-0.json.gz',
    ]);
    const shop = await server.records(bucket, 'k8s/ns=shop/dt=2023-11-14/c-ns-0.json.gz');
    assert.deepEqual(
      shop.map((r) => r.i),
      [0, 2, 3],
    );
  });

  it('a retried chunk overwrites its own objects: same keys, every record once', async () => {
    const bucket = await newBucket();
    const first = s3({ bucket });
    await first.start?.();
    const batches = [
      makeBatch('app.web', records(10, 'app.web')),
      makeBatch('app.api', records(5, 'app.api')),
    ];
    await first.write(makeChunk('c-retry', batches, 0), NO_DEADLINE);
    const keys = await server.keys(bucket);
    // Another replica retrying the chunk after a crash: a new output, the same chunk.
    const second = s3({ bucket });
    await second.start?.();
    await second.write(makeChunk('c-retry', batches, 3), NO_DEADLINE);
    assert.deepEqual(await server.keys(bucket), keys);
    const got = (await Promise.all(keys.map((k) => server.records(bucket, k)))).flat();
    assert.equal(got.length, 15);
  });

  it('a record that cannot be encoded is rejected alone; the others are uploaded', async () => {
    const bucket = await newBucket();
    const output = s3({ bucket });
    await output.start?.();
    const payload = Buffer.concat([
      encodeEntry({ time: T, record: { ok: 0 } }),
      deepEntryBytes(),
      encodeEntry({ time: T, record: { ok: 2 } }),
    ]);
    const batch: Batch = { tag: 'app.deep', payload, count: 3, bytes: payload.length };
    const result = await output.write(makeChunk('c-deep', [batch], 0), NO_DEADLINE);
    assert.equal(result?.reject?.length, 1);
    assert.match(result!.reject![0]!.reason, /^cannot encode the record: /);
    const keys = await server.keys(bucket);
    assert.deepEqual(await server.records(bucket, keys[0]!), [{ ok: 0 }, { ok: 2 }]);
  });

  it('an object above upload_chunk_size goes up in parts (multipart) and arrives whole', async () => {
    const bucket = await newBucket();
    const output = s3({
      bucket,
      compression: 'none',
      upload_chunk_size: '5MiB',
      key_format: 'big/${chunk_id}.jsonl',
    });
    await output.start?.();
    const pad = 'x'.repeat(1000);
    const entries = Array.from({ length: 7000 }, (_, i) => ({ time: T, record: { seq: i, pad } }));
    assert.equal(
      await output.write(makeChunk('c-big', [makeBatch('app.big', entries)], 0), NO_DEADLINE),
      undefined,
    );
    const object = await server.get(bucket, 'big/c-big-0.jsonl');
    assert.ok(object.body.length > 5 * 1024 * 1024 + 1, `${object.body.length} bytes`);
    const lines = object.body.toString().trimEnd().split('\n');
    assert.equal(lines.length, 7000);
    assert.deepEqual(JSON.parse(lines[6999]!), { seq: 6999, pad });
  });

  it('a missing bucket halts (the data waits); once the bucket exists the same chunk goes through', async () => {
    const bucket = `logs-missing-${++bucketSeq}`;
    const output = s3({ bucket });
    await output.start?.();
    const chunk = makeChunk('c-halt', [makeBatch('app.web', records(2, 'app.web'))], 0);
    await assert.rejects(output.write(chunk, NO_DEADLINE), (err: unknown) => {
      assert.ok(err instanceof HaltError, String(err));
      assert.match(err.message, /NoSuchBucket/);
      assert.match(err.message, /create the bucket/);
      return true;
    });
    await server.createBucket(bucket);
    assert.equal(await output.write(makeChunk('c-halt', chunk.batches, 1), NO_DEADLINE), undefined);
    assert.deepEqual(await server.keys(bucket), ['estuary/app.web/dt=2023-11-14/22/c-halt-0.json.gz']);
  });
});

describe('s3 output, format: parquet (read back with hyparquet)', () => {
  /** The object's rows and its schema as a parquet reader sees them (gzip and zstd by Node's zlib). */
  async function parquetOf(bucket: string, key: string) {
    const { body, contentType, contentEncoding } = await server.get(bucket, key);
    const file = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
    const compressors = {
      GZIP: (input: Uint8Array) => new Uint8Array(gunzipSync(input)),
      ZSTD: (input: Uint8Array) => new Uint8Array(zstdDecompressSync(input)),
    };
    const metadata = parquetMetadata(file);
    return {
      rows: await parquetReadObjects({ file, compressors, utf8: true }),
      columns: metadata.schema
        .slice(1)
        .map((e) => [e.name, e.logical_type?.type ?? e.converted_type ?? e.type]),
      codecs: new Set(metadata.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec))),
      contentType,
      contentEncoding,
    };
  }

  it('columns inferred from the records: one type per column, nested values as JSON, the time as a timestamp', async () => {
    const bucket = await newBucket();
    const output = s3({ bucket, format: 'parquet', json_date_key: 'date' });
    await output.start?.();
    const entries: Entry[] = [
      { time: T, record: { log: 'first', status: 200, latency: 1, ok: true, kubernetes: { pod: 'a' } } },
      {
        time: new EventTime(T.sec + 1, 0),
        record: { log: 'second', status: 2n ** 60n, latency: 2.5, mixed: 'x', kubernetes: { pod: 'b' } },
      },
      { time: T, record: { log: 'third', ok: false, mixed: 3, tags: ['p', 'q'], gone: null } },
    ];
    assert.equal(
      await output.write(makeChunk('c-pq', [makeBatch('app.web', entries)], 0), NO_DEADLINE),
      undefined,
    );
    assert.deepEqual(await server.keys(bucket), ['estuary/app.web/dt=2023-11-14/22/c-pq-0.parquet']);
    const got = await parquetOf(bucket, 'estuary/app.web/dt=2023-11-14/22/c-pq-0.parquet');
    assert.equal(got.contentType, 'application/vnd.apache.parquet');
    assert.equal(got.contentEncoding, undefined, 'parquet compresses its own columns');
    assert.deepEqual(got.codecs, new Set(['GZIP']));
    assert.deepEqual(got.columns, [
      ['date', 'TIMESTAMP'],
      ['log', 'UTF8'],
      ['status', 'INT64'],
      ['latency', 'DOUBLE'],
      ['ok', 'BOOLEAN'],
      ['kubernetes', 'UTF8'],
      ['mixed', 'UTF8'],
      ['tags', 'UTF8'],
      ['gone', 'UTF8'],
    ]);
    // The reader gives timestamps as Dates (milliseconds): the microseconds are in the file.
    assert.deepEqual(
      got.rows.map((r) => ({ ...r, date: (r.date as Date).toISOString() })),
      [
        {
          date: '2023-11-14T22:13:20.123Z',
          log: 'first',
          status: 200n,
          latency: 1,
          ok: true,
          kubernetes: '{"pod":"a"}',
          mixed: null,
          tags: null,
          gone: null,
        },
        {
          date: '2023-11-14T22:13:21.000Z',
          log: 'second',
          status: 2n ** 60n,
          latency: 2.5,
          ok: null,
          kubernetes: '{"pod":"b"}',
          mixed: 'x',
          tags: null,
          gone: null,
        },
        {
          date: '2023-11-14T22:13:20.123Z',
          log: 'third',
          status: null,
          latency: null,
          ok: false,
          kubernetes: null,
          mixed: '3',
          tags: '["p","q"]',
          gone: null,
        },
      ],
    );
  });

  it('schema: the columns named, in order, as typed; a record a column cannot hold is rejected alone', async () => {
    const bucket = await newBucket();
    const output = s3({
      bucket,
      format: 'parquet',
      compression: 'zstd',
      key_format: 'pq/${chunk_id}.parquet',
      schema: { status: 'int32', at: 'timestamp', body: 'json', level: 'string' },
    });
    await output.start?.();
    const entries: Entry[] = [
      {
        time: T,
        record: { status: 200, at: '2024-01-02T03:04:05.123456Z', body: 'hi', level: 'info', extra: 1 },
      },
      { time: T, record: { status: 'two hundred', level: 'warn' } },
      { time: T, record: { status: 500, at: 1_700_000_000.5, body: { a: [1] }, level: 7 } },
      { time: T, record: { at: 'not a time' } },
    ];
    const result = await output.write(makeChunk('c-schema', [makeBatch('app.web', entries)], 0), NO_DEADLINE);
    assert.deepEqual(
      result?.reject?.map((r) => [r.entry.record, r.reason]),
      [
        [entries[1]!.record, 'field "status": a parquet int32 column cannot hold "two hundred"'],
        [entries[3]!.record, 'field "at": a parquet timestamp column cannot hold "not a time"'],
      ],
    );
    const got = await parquetOf(bucket, 'pq/c-schema-0.parquet');
    assert.deepEqual(got.codecs, new Set(['ZSTD']));
    assert.deepEqual(got.columns, [
      ['status', 'INT32'],
      ['at', 'TIMESTAMP'],
      ['body', 'UTF8'],
      ['level', 'UTF8'],
    ]);
    assert.deepEqual(
      got.rows.map((r) => ({ ...r, at: (r.at as Date).toISOString() })),
      [
        { status: 200, at: '2024-01-02T03:04:05.123Z', body: '"hi"', level: 'info' },
        { status: 500, at: '2023-11-14T22:13:20.500Z', body: '{"a":[1]}', level: '7' },
      ],
    );
  });

  it('every record of a 50,000-record chunk arrives once, in order', async () => {
    const bucket = await newBucket();
    const output = s3({
      bucket,
      format: 'parquet',
      compression: 'snappy',
      key_format: 'big/${chunk_id}.parquet',
    });
    await output.start?.();
    const entries = Array.from({ length: 50_000 }, (_, i) => ({
      time: new EventTime(T.sec + (i % 60), i),
      record: { seq: i, log: `GET /item/${i} 200`, level: i % 3 === 0 ? 'warn' : 'info' },
    }));
    assert.equal(
      await output.write(makeChunk('c-many', [makeBatch('app.web', entries)], 0), NO_DEADLINE),
      undefined,
    );
    const got = await parquetOf(bucket, 'big/c-many-0.parquet');
    assert.deepEqual(got.codecs, new Set(['SNAPPY']));
    assert.deepEqual(
      got.rows.map((r) => r.seq),
      entries.map((e) => BigInt(e.record.seq)),
    );
    assert.equal(got.rows[49_999]!.log, 'GET /item/49999 200');
  });

  it('a chunk none of whose records a column can hold writes no object', async () => {
    const bucket = await newBucket();
    const output = s3({ bucket, format: 'parquet', schema: { n: 'int64' } });
    await output.start?.();
    const entries: Entry[] = [
      { time: T, record: { n: 'x' } },
      { time: T, record: { n: 1.5 } },
    ];
    const result = await output.write(makeChunk('c-none', [makeBatch('app.web', entries)], 0), NO_DEADLINE);
    assert.deepEqual(
      result?.reject?.map((r) => r.entry.record),
      entries.map((e) => e.record),
    );
    assert.deepEqual(await server.keys(bucket), []);
  });
});

/** `[T, {"a": [[…[1]…]]}]`, 3,000 deep: msgpack holds it, JSON writing refuses it (every time). */
function deepEntryBytes(depth = 3000): Buffer {
  return Buffer.concat([
    Buffer.from([0x92]),
    eventTimeBytes(T),
    Buffer.from([0x81, 0xa1, 0x61]),
    Buffer.alloc(depth - 1, 0x91),
    Buffer.from([0x01]),
  ]);
}
