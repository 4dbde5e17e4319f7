import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { firehoseOutput } from '../../../src/outputs/firehose/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { FirehoseFake, LIMITS } from '../../support/firehose-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';

/**
 * What the firehose output sends, driven through @aws-sdk/client-firehose against the fake:
 * the bytes of each record under every option, and calls that stay within PutRecordBatch's
 * limits whatever the chunk.
 */

useAwsTestEnv();

const T = new EventTime(1_700_000_000, 123_456_789);
let fake: FirehoseFake;
const outputs: Output[] = [];

before(async () => {
  fake = await FirehoseFake.start({ streams: ['logs'] });
});
afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  fake.reset();
});
after(() => fake.close());

function firehose(options: Record<string, unknown> = {}): Output {
  const output = firehoseOutput.create(
    firehoseOutput.schema.parse({ delivery_stream: 'logs', endpoint: fake.url, ...options }),
    { id: 'fh', logger: silentLogger(), metrics: new Metrics(), configDir: '/' },
  );
  outputs.push(output);
  return output;
}

function chunkOf(records: Record<string, unknown>[], id = 'c1'): Chunk {
  const entries: Entry[] = records.map((record) => ({ time: T, record }));
  return makeChunk(id, [makeBatch('app.web', entries)], 0);
}

const texts = () => fake.records('logs').map((r) => r.toString());

/** No call the output made was over a limit, and the fake took every one. */
function assertWithinLimits(): void {
  assert.ok(fake.calls.length > 0, 'calls were made');
  for (const call of fake.calls) {
    assert.equal(call.answer, '200', `a call answered ${call.answer}`);
    assert.ok(call.records.length <= LIMITS.records, `${call.records.length} records in one call`);
    assert.ok(call.bytes <= LIMITS.callBytes, `${call.bytes} bytes in one call`);
    for (const r of call.records) assert.ok(r.length <= LIMITS.recordBytes, `a record of ${r.length} bytes`);
  }
}

describe('firehose output: the records it sends', () => {
  it('one JSON line per record, through a signed PutRecordBatch', async () => {
    assert.equal(await firehose().write(chunkOf([{ a: 1 }, { msg: 'é "q"' }]), NO_DEADLINE), undefined);
    assert.deepEqual(texts(), ['{"a":1}\n', '{"msg":"é \\"q\\""}\n']);
    assert.equal(fake.calls.length, 1);
    assert.equal(fake.calls[0]!.target, 'Firehose_20150804.PutRecordBatch');
    assert.equal(fake.calls[0]!.accessKeyId, 'FAKEKEY');
  });

  it('time_key adds the time in Fluent Bit format (%3N too); a record with the key keeps its own', async () => {
    const output = firehose({ time_key: 'ts', time_key_format: '%Y-%m-%dT%H:%M:%S.%3NZ' });
    await output.write(chunkOf([{ a: 1 }, {}, { ts: 'mine' }]), NO_DEADLINE);
    assert.deepEqual(texts(), [
      '{"a":1,"ts":"2023-11-14T22:13:20.123Z"}\n',
      '{"ts":"2023-11-14T22:13:20.123Z"}\n',
      '{"ts":"mine"}\n',
    ]);
  });

  it("time_key_format defaults to Fluent Bit's %Y-%m-%dT%H:%M:%S", async () => {
    await firehose({ time_key: 'time' }).write(chunkOf([{ a: 1 }]), NO_DEADLINE);
    assert.deepEqual(texts(), ['{"a":1,"time":"2023-11-14T22:13:20"}\n']);
  });

  it('replace_dots renames keys at every depth, time_key added as well', async () => {
    const output = firehose({ replace_dots: '_', time_key: 'at.time' });
    await output.write(
      chunkOf([{ 'kubernetes.labels': { 'app.kubernetes.io/name': 'web' }, list: [{ 'a.b': 1 }] }]),
      NO_DEADLINE,
    );
    assert.deepEqual(texts(), [
      '{"kubernetes_labels":{"app_kubernetes_io/name":"web"},"list":[{"a_b":1}],"at.time":"2023-11-14T22:13:20"}\n',
    ]);
  });

  it('log_key sends the field raw; a record without it is rejected alone', async () => {
    const result = await firehose({ log_key: 'log' }).write(
      chunkOf([{ log: 'GET / 200', stream: 'stdout' }, { other: 1 }, { log: { n: 1 } }]),
      NO_DEADLINE,
    );
    assert.deepEqual(
      result?.reject?.map((r) => [r.entry.record, r.reason]),
      [[{ other: 1 }, 'the record has no "log" field (log_key)']],
    );
    assert.deepEqual(result?.retry, []);
    assert.deepEqual(texts(), ['GET / 200\n', '{"n":1}\n']);
  });

  it('append_newline: false sends records without a newline', async () => {
    await firehose({ append_newline: false, log_key: 'log' }).write(chunkOf([{ log: 'x' }]), NO_DEADLINE);
    await firehose({ append_newline: false }).write(chunkOf([{ a: 1 }]), NO_DEADLINE);
    assert.deepEqual(texts(), ['x', '{"a":1}']);
  });

  it('compression gzip and zstd: each Firehose record compressed on its own', async () => {
    await firehose({ compression: 'gzip' }).write(chunkOf([{ a: 1 }, { a: 2 }]), NO_DEADLINE);
    await firehose({ compression: 'zstd' }).write(chunkOf([{ a: 3 }]), NO_DEADLINE);
    const [g1, g2, z] = fake.records('logs');
    assert.equal(gunzipSync(g1!).toString(), '{"a":1}\n');
    assert.equal(gunzipSync(g2!).toString(), '{"a":2}\n');
    assert.equal(zstdDecompressSync(z!).toString(), '{"a":3}\n');
  });

  it('aggregation simple: records packed newline-joined into records of at most 1,000 KiB', async () => {
    const records = Array.from({ length: 3000 }, (_, i) => ({ seq: i, pad: 'x'.repeat(900) }));
    assert.equal(await firehose({ aggregation: 'simple' }).write(chunkOf(records), NO_DEADLINE), undefined);
    assertWithinLimits();
    const stored = fake.records('logs');
    assert.ok(stored.length < 10, `${stored.length} Firehose records for 3,000 log records`);
    assert.ok(
      stored.some((r) => r.length > LIMITS.recordBytes - 1000),
      'aggregates are filled up',
    );
    const lines = stored.flatMap((r) => r.toString().trimEnd().split('\n'));
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { seq: number }).seq),
      records.map((r) => r.seq),
    );
  });

  it('aggregation simple with gzip: each aggregate decompresses to whole lines', async () => {
    const records = Array.from({ length: 200 }, (_, i) => ({ seq: i }));
    await firehose({ aggregation: 'simple', compression: 'gzip' }).write(chunkOf(records), NO_DEADLINE);
    const stored = fake.records('logs');
    assert.equal(stored.length, 1);
    const lines = gunzipSync(stored[0]!).toString().trimEnd().split('\n');
    assert.equal(lines.length, 200);
  });

  it('a chunk of many records goes in calls of at most 500 records and 4 MiB', async () => {
    const small = Array.from({ length: 1234 }, (_, i) => ({ seq: i }));
    await firehose().write(chunkOf(small, 'small'), NO_DEADLINE);
    const big = Array.from({ length: 12 }, (_, i) => ({ seq: i, pad: 'y'.repeat(900 * 1024) }));
    await firehose().write(chunkOf(big, 'big'), NO_DEADLINE);
    assertWithinLimits();
    assert.deepEqual(
      fake.calls.map((c) => c.records.length),
      [500, 500, 234, 4, 4, 4],
    );
    assert.equal(fake.records('logs').length, 1234 + 12);
  });

  it('oversize reject: a record over 1,000 KiB is dead-lettered with the reason, the others sent', async () => {
    const result = await firehose().write(
      chunkOf([{ seq: 0 }, { seq: 1, pad: 'z'.repeat(LIMITS.recordBytes) }, { seq: 2 }]),
      NO_DEADLINE,
    );
    assert.equal(result?.reject?.length, 1);
    assert.equal((result!.reject![0]!.entry.record as { seq: number }).seq, 1);
    assert.match(
      result!.reject![0]!.reason,
      /^a record of 1024019 bytes is over Firehose's limit of 1024000 bytes per record$/,
    );
    assert.deepEqual(texts(), ['{"seq":0}\n', '{"seq":2}\n']);
  });

  it('oversize truncate: the record is cut to the limit at a character boundary, newline kept', async () => {
    const result = await firehose({ oversize: 'truncate', log_key: 'log' }).write(
      chunkOf([{ log: `${'é'.repeat(LIMITS.recordBytes)}` }]),
      NO_DEADLINE,
    );
    assert.equal(result, undefined);
    const [stored] = fake.records('logs');
    assert.equal(stored!.length, LIMITS.recordBytes - 1, 'an é is two bytes: the cut falls before one');
    assert.ok(stored!.toString().endsWith('é\n'));
    assertWithinLimits();
  });

  it('oversize truncate with gzip: the compressed record fits even when the text does not compress', async () => {
    const random = Buffer.from(Array.from({ length: 1_200_000 }, (_, i) => 33 + ((i * 7919) % 89))).toString(
      'latin1',
    );
    const result = await firehose({ oversize: 'truncate', compression: 'gzip', log_key: 'log' }).write(
      chunkOf([{ log: random }]),
      NO_DEADLINE,
    );
    assert.equal(result, undefined);
    assertWithinLimits();
    const text = gunzipSync(fake.records('logs')[0]!).toString();
    assert.ok(random.startsWith(text.slice(0, -1)) && text.endsWith('\n'), 'a prefix of the line');
  });
});
