import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { HaltError, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { firehoseOutput } from '../../../src/outputs/firehose/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { FirehoseFake, firehoseError, SLOW_DOWN } from '../../support/firehose-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { freePort, settlesWithin } from '../../support/wait.ts';

/**
 * What each answer of Firehose means for the data: a record failed alone is retried alone, a
 * failed call is retried, halts or is dead-lettered by its error type — one try per write, the
 * buffer does the rest.
 */

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY';
useAwsTestEnv({ secretAccessKey: SECRET });

let fake: FirehoseFake;
const outputs: Output[] = [];
let logged = '';
const logger = pino(
  { level: 'debug' },
  new Writable({
    write(line: Buffer, _enc, callback) {
      logged += line.toString();
      callback();
    },
  }),
);

before(async () => {
  fake = await FirehoseFake.start({ streams: ['logs'], keys: ['FAKEKEY', 'DENIEDKEY'] });
  fake.deniedKeys.add('DENIEDKEY');
});
afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  fake.reset();
});
after(async () => {
  await fake.close();
  assert.ok(logged.length > 0, 'the outputs logged');
  assert.ok(!logged.includes(SECRET), 'the secret key is never logged');
});

function firehose(
  options: Record<string, unknown> = {},
  accessKeyId = 'FAKEKEY',
  metrics = new Metrics(),
): Output {
  process.env.AWS_ACCESS_KEY_ID = accessKeyId;
  const output = firehoseOutput.create(
    firehoseOutput.schema.parse({ delivery_stream: 'logs', endpoint: fake.url, ...options }),
    { id: 'fh', logger, metrics, configDir: '/' },
  );
  outputs.push(output);
  return output;
}

function chunkOf(n: number, pad = 0): Chunk {
  const entries = Array.from({ length: n }, (_, i) => ({
    time: new EventTime(1_700_000_000, 0),
    record: { seq: i, ...(pad > 0 ? { pad: 'p'.repeat(pad) } : {}) },
  }));
  return makeChunk('c1', [makeBatch('app.web', entries)], 0);
}

async function failure(output: Output, chunk = chunkOf(2)): Promise<Error> {
  const outcome = await settlesWithin(output.write(chunk, NO_DEADLINE), 10_000);
  assert.ok(outcome.error instanceof Error, `the write fails (got ${JSON.stringify(outcome.value)})`);
  assert.ok(!outcome.error.message.includes(SECRET), 'no secret in the error');
  return outcome.error;
}

const seqs = (entries: readonly { record: unknown }[] | undefined) =>
  (entries ?? []).map((e) => (e.record as { seq: number }).seq);
const stored = () => fake.records('logs').map((r) => (JSON.parse(r.toString()) as { seq: number }).seq);

describe('firehose output: what each answer of Firehose means', () => {
  it('records answered with an ErrorCode are retried alone; the metric counts them by code', async () => {
    const metrics = new Metrics();
    fake.recordFailure = (_data, i) =>
      i % 3 === 0 ? SLOW_DOWN : i === 4 ? { ErrorCode: 'InternalFailure', ErrorMessage: 'boom' } : undefined;
    const result = await firehose({}, 'FAKEKEY', metrics).write(chunkOf(7), NO_DEADLINE);
    assert.deepEqual(seqs(result?.retry), [0, 3, 4, 6]);
    assert.deepEqual(result?.reject, []);
    assert.deepEqual(stored(), [1, 2, 5]);
    const text = await metrics.registry.metrics();
    assert.equal(
      sample(text, 'estuary_aws_records_failed_total', {
        plugin_id: 'fh',
        error_code: 'ServiceUnavailableException',
      }).value,
      3,
    );
    assert.equal(
      sample(text, 'estuary_aws_records_failed_total', { plugin_id: 'fh', error_code: 'InternalFailure' })
        .value,
      1,
    );
    assert.equal(fake.calls.length, 1, 'no retry inside the write');
  });

  it('an aggregate answered with an ErrorCode is retried as the records it holds', async () => {
    fake.recordFailure = (_data, i) => (i === 1 ? SLOW_DOWN : undefined);
    // Records of ~300 KiB: three to an aggregate.
    const result = await firehose({ aggregation: 'simple' }).write(chunkOf(7, 300 * 1024), NO_DEADLINE);
    assert.deepEqual(
      fake.calls[0]!.records.map((r) => r.toString().trimEnd().split('\n').length),
      [3, 3, 1],
    );
    assert.deepEqual(seqs(result?.retry), [3, 4, 5]);
  });

  it('ServiceUnavailableException (a whole call throttled) is retried, once', async () => {
    fake.script = () => firehoseError(500, 'ServiceUnavailableException', 'Slow down.');
    const error = await failure(firehose());
    assert.ok(error instanceof RetryableError, String(error));
    assert.match(error.message, /ServiceUnavailableException/);
    assert.equal(fake.calls.length, 1);
  });

  it('ThrottlingException and LimitExceededException (400s) are retried; a Retry-After is passed on', async () => {
    fake.script = () => firehoseError(400, 'ThrottlingException', 'Rate exceeded', { 'retry-after': '2' });
    const throttled = await failure(firehose());
    assert.ok(throttled instanceof RetryableError, String(throttled));
    assert.equal(throttled.retryAfterMs, 2000);
    fake.script = () => firehoseError(400, 'LimitExceededException', 'Limit exceeded');
    assert.ok((await failure(firehose())) instanceof RetryableError);
  });

  it('a 502 from a proxy is retried', async () => {
    fake.script = () => ({
      status: 502,
      headers: { 'content-type': 'text/html' },
      body: '<html>bad gateway</html>',
    });
    assert.ok((await failure(firehose())) instanceof RetryableError);
  });

  it('a failed call stops the write: the calls before are done, it and the ones after retried', async () => {
    let n = 0;
    fake.script = () =>
      ++n === 2
        ? firehoseError(500, 'ServiceUnavailableException', 'Slow down.', { 'retry-after': '1' })
        : undefined;
    const result = await firehose().write(chunkOf(1200), NO_DEADLINE);
    assert.equal(fake.calls.length, 2, 'the third call is not sent after the second failed');
    assert.deepEqual(
      stored(),
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.deepEqual(
      seqs(result?.retry),
      Array.from({ length: 700 }, (_, i) => 500 + i),
    );
    assert.equal(result?.retryAfterMs, 1000);
  });

  it('a missing delivery stream halts, saying what to do', async () => {
    const error = await failure(firehose({ delivery_stream: 'missing' }));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /ResourceNotFoundException.*create the stream/);
  });

  it('AccessDeniedException halts', async () => {
    const error = await failure(firehose({}, 'DENIEDKEY'));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /AccessDeniedException/);
  });

  it('an unknown access key (UnrecognizedClientException) halts', async () => {
    const error = await failure(firehose({}, 'UNKNOWNKEY'));
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /UnrecognizedClientException/);
  });

  it('InvalidArgumentException "not permitted" (a Kinesis-sourced delivery stream) halts: the stream is wrong, not the records', async () => {
    fake.script = () =>
      firehoseError(
        400,
        'InvalidArgumentException',
        'This operation is not permitted on KinesisStreamAsSource delivery stream type.',
      );
    const error = await failure(firehose());
    assert.ok(error instanceof HaltError, String(error));
  });

  it("InvalidArgumentException dead-letters that call's records with the reason; the other calls go on", async () => {
    let n = 0;
    fake.script = () =>
      ++n === 1 ? firehoseError(400, 'InvalidArgumentException', 'Record is not valid') : undefined;
    const result = await firehose().write(chunkOf(700), NO_DEADLINE);
    assert.equal(result?.reject?.length, 500);
    assert.match(result!.reject![0]!.reason, /InvalidArgumentException: Record is not valid/);
    assert.deepEqual(result?.retry, []);
    assert.deepEqual(
      stored(),
      Array.from({ length: 200 }, (_, i) => 500 + i),
    );
  });

  it('a Firehose that never answers: the write deadline abandons the call, retryably', async () => {
    fake.script = () => 'hang';
    const controller = new AbortController();
    const write = firehose().write(chunkOf(1), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('write_timeout 200ms')), 200);
    const outcome = await settlesWithin(write, 5000);
    assert.ok(outcome.error instanceof RetryableError, String(outcome.error));
    assert.match(outcome.error.message, /write_timeout/);
  });

  it('nothing listening (connection refused) is retried', async () => {
    const port = await freePort();
    const error = await failure(firehose({ endpoint: `http://127.0.0.1:${port}` }));
    assert.ok(error instanceof RetryableError, String(error));
  });

  it('no region: the output halts at once without calling', async () => {
    const region = process.env.AWS_REGION;
    delete process.env.AWS_REGION;
    try {
      const error = await failure(firehose());
      assert.ok(error instanceof HaltError, String(error));
      assert.match(error.message, /no region/);
      assert.equal(fake.calls.length, 0);
    } finally {
      process.env.AWS_REGION = region;
    }
  });
});
