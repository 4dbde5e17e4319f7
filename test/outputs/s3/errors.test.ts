import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { pino } from 'pino';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { HaltError, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { s3Output } from '../../../src/outputs/s3/index.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { S3Fake, s3Error } from '../../support/s3-fake.ts';
import { settlesWithin, waitFor } from '../../support/wait.ts';

/**
 * What s3rver cannot show — credentials refused, throttling, a multipart upload failing half-way,
 * the checksum headers — against a fake that answers with S3's XML error shapes, driven through
 * the SDK as the output uses it.
 */

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY';
const T = new EventTime(1_700_000_000, 0);
const MiB = 1024 * 1024;

useAwsTestEnv({ secretAccessKey: SECRET });

let fake: S3Fake;
const outputs: Output[] = [];
let logged = '';

before(async () => {
  fake = await S3Fake.start({ buckets: ['logs'], keys: ['FAKEKEY', 'DENIEDKEY'] });
  fake.deniedKeys.add('DENIEDKEY');
});

afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  fake.script = () => undefined;
  fake.requests.length = 0;
  delete process.env.AWS_SESSION_TOKEN;
});

after(async () => {
  await fake.close();
  assert.ok(!logged.includes(SECRET), 'the secret key is never logged');
});

/** Every log line of every output, at debug, for the check that no secret is in them. */
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(line: Buffer, _enc, callback) {
      logged += line.toString();
      callback();
    },
  }),
);

function s3(options: Record<string, unknown> = {}, accessKeyId = 'FAKEKEY'): Output {
  process.env.AWS_ACCESS_KEY_ID = accessKeyId;
  const output = s3Output.create(
    s3Output.schema.parse({ bucket: 'logs', endpoint: fake.url, force_path_style: true, ...options }),
    { id: 's3.fake', logger, metrics: new Metrics(), configDir: '/' },
  );
  outputs.push(output);
  return output;
}

function chunkOf(n: number, id = 'c1', pad = 0): Chunk {
  const entries: Entry[] = Array.from({ length: n }, (_, i) => ({
    time: T,
    record: { seq: i, ...(pad > 0 ? { pad: 'y'.repeat(pad) } : {}) },
  }));
  return makeChunk(id, [makeBatch('app.web', entries)], 0);
}

async function failure(output: Output, chunk = chunkOf(2)): Promise<unknown> {
  const outcome = await settlesWithin(output.write(chunk, NO_DEADLINE), 10_000);
  assert.notEqual(outcome.error, undefined, 'the write fails');
  assert.ok(!String(outcome.error).includes(SECRET), 'no secret in the error');
  return outcome.error;
}

describe('s3 output: what each answer of S3 means', () => {
  it('a PutObject carries the object, its Content-Type and Content-Encoding, and a checksum', async () => {
    const output = s3();
    assert.equal(await output.write(chunkOf(3), NO_DEADLINE), undefined);
    const put = fake.requests.find((r) => r.op === 'PutObject')!;
    assert.equal(put.key, 'estuary/app.web/dt=2023-11-14/22/c1-0.json.gz');
    assert.equal(put.headers['content-type'], 'application/x-ndjson');
    assert.equal(put.headers['content-encoding'], 'gzip');
    assert.ok(
      Object.keys(put.headers).some((h) => h.startsWith('x-amz-checksum-')),
      'when_supported: the SDK checksum is sent',
    );
    // Each record with its time under json_date_key, as Fluent Bit's s3 output adds it.
    const date = '"date":"2023-11-14T22:13:20.000000Z"';
    assert.equal(
      gunzipSync(put.body).toString(),
      `{"seq":0,${date}}\n{"seq":1,${date}}\n{"seq":2,${date}}\n`,
    );
  });

  it('checksum: when_required sends no checksum header on PutObject', async () => {
    const output = s3({ checksum: 'when_required' });
    assert.equal(await output.write(chunkOf(1), NO_DEADLINE), undefined);
    const put = fake.requests.find((r) => r.op === 'PutObject')!;
    assert.deepEqual(
      Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum-')),
      [],
    );
  });

  it('storage class, encryption, ACL and tags go on every object, single or multipart', async () => {
    const settings = {
      storage_class: 'STANDARD_IA',
      server_side_encryption: 'aws:kms',
      kms_key_id: 'alias/logs',
      canned_acl: 'bucket-owner-full-control',
      tagging: { team: 'web', 'cost center': 'a&b' },
      compression: 'none',
    };
    const output = s3(settings);
    assert.equal(await output.write(chunkOf(1, 'c-small'), NO_DEADLINE), undefined);
    assert.equal(await output.write(chunkOf(12, 'c-large', MiB), NO_DEADLINE), undefined);
    const creating = fake.requests.filter((r) => r.op === 'PutObject' || r.op === 'CreateMultipartUpload');
    assert.deepEqual(
      creating.map((r) => r.op),
      ['PutObject', 'CreateMultipartUpload'],
    );
    for (const r of creating) {
      assert.equal(r.headers['x-amz-storage-class'], 'STANDARD_IA');
      assert.equal(r.headers['x-amz-server-side-encryption'], 'aws:kms');
      assert.equal(r.headers['x-amz-server-side-encryption-aws-kms-key-id'], 'alias/logs');
      assert.equal(r.headers['x-amz-acl'], 'bucket-owner-full-control');
      assert.equal(r.headers['x-amz-tagging'], 'team=web&cost+center=a%26b');
    }
  });

  it('zstd: the object is zstd-compressed and says so', async () => {
    const output = s3({ compression: 'zstd', json_date_key: false });
    assert.equal(await output.write(chunkOf(2), NO_DEADLINE), undefined);
    const put = fake.requests.find((r) => r.op === 'PutObject')!;
    assert.equal(
      put.key,
      'estuary/app.web/dt=2023-11-14/22/c1-0.json.zst',
      'the default key ends as the object is',
    );
    assert.equal(put.headers['content-encoding'], 'zstd');
    assert.equal(zstdDecompressSync(put.body).toString(), '{"seq":0}\n{"seq":1}\n');
  });

  it('json_date_key / json_date_format: the time as Fluent Bit writes it; a record with the key keeps its own', async () => {
    const time = new EventTime(1_700_000_000, 123_456_789);
    const entries: Entry[] = [
      { time, record: { seq: 0 } },
      { time, record: {} },
      { time, record: { seq: 2, ts: 'mine' } },
    ];
    const lines = async (options: Record<string, unknown>) => {
      fake.requests.length = 0;
      const output = s3({ compression: 'none', ...options });
      assert.equal(
        await output.write(makeChunk('c-date', [makeBatch('app.web', entries)], 0), NO_DEADLINE),
        undefined,
      );
      return fake.requests
        .find((r) => r.op === 'PutObject')!
        .body.toString()
        .trimEnd()
        .split('\n');
    };
    const expected: Record<string, string> = {
      iso8601: '"2023-11-14T22:13:20.123456Z"',
      java_sql_timestamp: '"2023-11-14 22:13:20.123456"',
      double: '1700000000.123456',
      epoch: '1700000000',
      epoch_ms: '1700000000123',
    };
    for (const [format, value] of Object.entries(expected)) {
      assert.deepEqual(
        await lines({ json_date_key: 'ts', json_date_format: format }),
        [`{"seq":0,"ts":${value}}`, `{"ts":${value}}`, '{"seq":2,"ts":"mine"}'],
        format,
      );
    }
    assert.deepEqual(await lines({ json_date_key: 'false' }), ['{"seq":0}', '{}', '{"seq":2,"ts":"mine"}']);
  });

  it('format plain: the log_key field per line, strings as written, other values as JSON; records without it rejected', async () => {
    const output = s3({ format: 'plain', log_key: 'message', compression: 'none' });
    const entries: Entry[] = [
      { time: T, record: { message: 'GET /cart 200 "ok" é', level: 'info' } },
      { time: T, record: { level: 'debug' } },
      { time: T, record: { message: { nested: [1, 2] } } },
      { time: T, record: { message: 42 } },
    ];
    const result = await output.write(makeChunk('c-plain', [makeBatch('app.web', entries)], 0), NO_DEADLINE);
    assert.deepEqual(
      result?.reject?.map((r) => [r.entry.record, r.reason]),
      [[{ level: 'debug' }, 'the record has no "message" field (log_key)']],
    );
    const put = fake.requests.find((r) => r.op === 'PutObject')!;
    assert.equal(put.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(put.body.toString(), 'GET /cart 200 "ok" é\n{"nested":[1,2]}\n42\n');
  });

  it('format plain takes `log` by default', async () => {
    const output = s3({ format: 'plain', compression: 'none' });
    const entries: Entry[] = [{ time: T, record: { log: 'line one', stream: 'stdout' } }];
    assert.equal(
      await output.write(makeChunk('c-log', [makeBatch('app.web', entries)], 0), NO_DEADLINE),
      undefined,
    );
    assert.equal(fake.requests.find((r) => r.op === 'PutObject')!.body.toString(), 'line one\n');
  });

  it('503 SlowDown is retried, once (the SDK does not retry by itself)', async () => {
    fake.script = () => s3Error(503, 'SlowDown', 'Please reduce your request rate.');
    const error = await failure(s3());
    assert.ok(error instanceof RetryableError, String(error));
    assert.match(error.message, /SlowDown/);
    assert.equal(fake.requests.length, 1);
  });

  it('500 InternalError is retried; a Retry-After is passed on', async () => {
    fake.script = () =>
      s3Error(500, 'InternalError', 'We encountered an internal error.', { 'retry-after': '3' });
    const error = await failure(s3());
    assert.ok(error instanceof RetryableError, String(error));
    assert.equal(error.retryAfterMs, 3000);
  });

  it('AccessDenied halts, saying what to check', async () => {
    const error = await failure(s3({}, 'DENIEDKEY'));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /AccessDenied.*IAM policy/);
  });

  it('an unknown access key (InvalidAccessKeyId) halts', async () => {
    const error = await failure(s3({}, 'UNKNOWNKEY'));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /InvalidAccessKeyId/);
  });

  it('an expired session token (ExpiredToken) halts', async () => {
    process.env.AWS_SESSION_TOKEN = 'expired';
    const error = await failure(s3());
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /ExpiredToken/);
  });

  it('a refused connection is retried', async () => {
    const output = s3({ endpoint: 'http://127.0.0.1:1' });
    const error = await failure(output);
    assert.ok(error instanceof RetryableError, String(error));
  });

  it('no answer within request_timeout is retried', async () => {
    fake.script = () => 'hang';
    const outcome = await settlesWithin(
      s3({ request_timeout: '300ms' }).write(chunkOf(1), NO_DEADLINE),
      5000,
    );
    assert.ok(outcome.error instanceof RetryableError, String(outcome.error));
    assert.ok(outcome.ms < 2000, `gave up after ${outcome.ms}ms`);
  });

  it('above upload_chunk_size: a multipart upload in parts of that size', async () => {
    const output = s3({ compression: 'none', upload_chunk_size: '5MiB' });
    assert.equal(await output.write(chunkOf(12, 'c-mp', MiB), NO_DEADLINE), undefined);
    assert.deepEqual(
      fake.ops().filter((op) => op !== 'UploadPart'),
      ['CreateMultipartUpload', 'CompleteMultipartUpload'],
    );
    assert.equal(fake.ops().filter((op) => op === 'UploadPart').length, 3);
    const object = fake.objects.get('logs/estuary/app.web/dt=2023-11-14/22/c-mp-0.json')!;
    assert.equal(object.body.toString().trimEnd().split('\n').length, 12);
  });

  it('use_put_object: one PutObject whatever the size', async () => {
    const output = s3({ compression: 'none', use_put_object: true });
    assert.equal(await output.write(chunkOf(7, 'c-put', MiB), NO_DEADLINE), undefined);
    assert.deepEqual(fake.ops(), ['PutObject']);
  });

  it('a multipart upload failing half-way is aborted (no orphaned parts), and the retry uploads it whole', async () => {
    const output = s3({ compression: 'none' });
    let parts = 0;
    fake.script = (r) =>
      r.op === 'UploadPart' && ++parts === 2
        ? s3Error(500, 'InternalError', 'We encountered an internal error.')
        : undefined;
    const error = await failure(output, chunkOf(12, 'c-abort', MiB));
    assert.ok(error instanceof RetryableError, String(error));
    assert.ok(fake.ops().includes('AbortMultipartUpload'), fake.ops().join());
    assert.equal(fake.uploads.size, 0, 'no upload left open');
    assert.equal(await output.write(chunkOf(12, 'c-abort', MiB), NO_DEADLINE), undefined);
    const object = fake.objects.get('logs/estuary/app.web/dt=2023-11-14/22/c-abort-0.json')!;
    assert.equal(object.body.toString().trimEnd().split('\n').length, 12);
    assert.equal(fake.uploads.size, 0);
  });

  it('the write signal ends a multipart upload at once; S3 is told to abort it when its parts settle', async () => {
    // lib-storage sends parts without the signal: a hung part lasts until request_timeout.
    const output = s3({ compression: 'none', request_timeout: '500ms' });
    fake.script = (r) => (r.op === 'UploadPart' ? 'hang' : undefined);
    const deadline = new AbortController();
    const write = output.write(chunkOf(12, 'c-deadline', MiB), { signal: deadline.signal });
    await waitFor(() => fake.ops().includes('UploadPart'), { what: 'a part to be sent' });
    deadline.abort(new Error('write_timeout'));
    const outcome = await settlesWithin(write, 1000);
    assert.ok(outcome.error instanceof RetryableError, String(outcome.error));
    fake.script = () => undefined;
    await waitFor(() => fake.uploads.size === 0, { what: 'the multipart upload to be aborted' });
  });

  it('records whose tag makes a key past 1024 bytes are rejected; the others are uploaded', async () => {
    const long = `app.${'x'.repeat(1100)}`;
    const entries = (n: number) => Array.from({ length: n }, (_, i) => ({ time: T, record: { seq: i } }));
    const chunk = makeChunk('c-long', [makeBatch(long, entries(2)), makeBatch('app.web', entries(1))], 0);
    const result = await s3().write(chunk, NO_DEADLINE);
    assert.deepEqual(
      result?.reject?.map((r) => [r.entry.tag, r.entry.record.seq]),
      [
        [long, 0],
        [long, 1],
      ],
    );
    assert.match(result!.reject![0]!.reason, /key longer than S3's 1024 bytes$/);
    assert.deepEqual(
      fake.requests.map((r) => r.key),
      ['estuary/app.web/dt=2023-11-14/22/c-long-1.json.gz'],
    );
  });

  it('a missing bucket halts', async () => {
    const error = await failure(s3({ bucket: 'not-there' }));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /NoSuchBucket/);
  });
});
