import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { OutputBuffer } from '../../../src/buffer/buffer.ts';
import { MemoryBackend } from '../../../src/buffer/memory/memory-store.ts';
import { resolveBufferSettings } from '../../../src/config/schema.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { firehoseOutput } from '../../../src/outputs/firehose/index.ts';
import type { Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { FirehoseFake, LIMITS, type RecordError, SLOW_DOWN } from '../../support/firehose-fake.ts';
import { rng } from '../../support/msgpack-gen.ts';
import { emitTo } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * The output behind the real buffer, with Firehose failing a fifth of the records of every
 * call: each record is delivered exactly once (the records carry ids; aggregates are split back
 * into them), no call passes a limit, and the failure metric counts what Firehose refused.
 * Fluent Bit re-sends the whole batch here and duplicates the records that went through.
 */

useAwsTestEnv();

let fake: FirehoseFake;
let open: { buffer: OutputBuffer; output: Output }[] = [];

before(async () => {
  fake = await FirehoseFake.start({ streams: ['logs'] });
});
afterEach(async () => {
  for (const { buffer, output } of open) {
    await buffer.stop(Date.now());
    await output.stop?.();
  }
  open = [];
  fake.reset();
});
after(() => fake.close());

async function setup(options: Record<string, unknown>, buffer: Record<string, unknown> = {}) {
  const metrics = new Metrics();
  const deps = { id: 'fh', logger: silentLogger(), metrics, configDir: '/' };
  const output = firehoseOutput.create(
    firehoseOutput.schema.parse({ delivery_stream: 'logs', endpoint: fake.url, ...options }),
    deps,
  );
  const settings = resolveBufferSettings(firehoseOutput.bufferDefaults, {
    flush_interval: 10,
    chunk_limit_records: 2000,
    retry: { wait: 5, randomize: false, exponential_backoff_base: 1.5, max_interval: 50 },
    ...buffer,
  });
  const store = new MemoryBackend().create(output, settings, deps);
  metrics.registerOutput(store);
  await output.start?.();
  await store.start();
  open.push({ buffer: store, output });
  return { buffer: store, metrics };
}

/** Every id in the stored Firehose records, aggregates and compression undone. */
function deliveredIds(gzip = false): number[] {
  return fake
    .records('logs')
    .flatMap((r) => (gzip ? gunzipSync(r) : r).toString().trimEnd().split('\n'))
    .map((line) => (JSON.parse(line) as { id: number }).id);
}

async function emitRecords(buffer: OutputBuffer, n: number, pad: (i: number) => number): Promise<void> {
  for (let start = 0; start < n; start += 1000) {
    const entries = Array.from({ length: Math.min(1000, n - start) }, (_, k) => {
      const id = start + k;
      return { time: new EventTime(1_700_000_000 + id, 0), record: { id, msg: 'm'.repeat(pad(id)) } };
    });
    await emitTo(buffer, makeBatch('app.web', entries));
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

for (const mode of [
  { name: 'one record each', options: {} },
  { name: 'aggregation simple', options: { aggregation: 'simple' } },
  { name: 'aggregation simple, gzip', options: { aggregation: 'simple', compression: 'gzip' } },
]) {
  describe(`firehose output behind the buffer (${mode.name})`, () => {
    it('20% of the records of every call fail: every record delivered exactly once, no call over a limit', async () => {
      const roll = rng(15);
      let refused = 0;
      fake.recordFailure = (): RecordError | undefined => {
        if (roll() >= 0.2) return undefined;
        refused += 1;
        return refused % 4 === 0
          ? { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service failure.' }
          : SLOW_DOWN;
      };
      const { buffer, metrics } = await setup(mode.options);
      const N = 6000;
      // Sizes from 20 bytes to 40 KiB, a few near 900 KiB: calls fill up by count and by bytes.
      await emitRecords(buffer, N, (i) =>
        i % 997 === 0 ? 900 * 1024 : i % 13 === 0 ? 40 * 1024 : 20 + (i % 50),
      );
      await waitFor(
        () => fake.records('logs').length > 0 && deliveredIds('compression' in mode.options).length >= N,
        {
          timeoutMs: 60_000,
          what: 'every record delivered',
        },
      );
      await waitFor(async () => (await buffer.stats()).queueLength === 0, { what: 'the buffer drained' });
      const ids = deliveredIds('compression' in mode.options);
      assert.equal(ids.length, N, 'no record delivered twice');
      assert.deepEqual(
        [...ids].sort((a, b) => a - b),
        range(N),
      );
      // Aggregates are few (a few dozen for 6,000 records), so fewer of them fail.
      const least = 'aggregation' in mode.options ? 5 : 100;
      assert.ok(refused >= least, `Firehose refused ${refused} records`);
      for (const call of fake.calls) {
        assert.equal(call.answer, '200', `a call answered ${call.answer}`);
        assert.ok(call.records.length <= LIMITS.records);
        assert.ok(call.bytes <= LIMITS.callBytes);
        for (const r of call.records) assert.ok(r.length <= LIMITS.recordBytes);
      }
      const text = await metrics.registry.metrics();
      const counted = (code: string) =>
        sample(text, 'estuary_aws_records_failed_total', { plugin_id: 'fh', error_code: code }).value;
      assert.equal(counted('ServiceUnavailableException') + counted('InternalFailure'), refused);
      assert.equal(counted('InternalFailure'), Math.floor(refused / 4));
      assert.deepEqual(await buffer.deadLetter.list(), []);
    });
  });
}

describe('firehose output behind the buffer: giving up', () => {
  it('a record Firehose never takes is dead-lettered when the retry policy gives up; the rest delivered once', async () => {
    fake.recordFailure = (data) =>
      (JSON.parse(data.toString()) as { id: number }).id === 3 ? SLOW_DOWN : undefined;
    const { buffer } = await setup(
      {},
      { retry: { wait: 5, randomize: false, max_interval: 20, max_times: 2 } },
    );
    await emitRecords(buffer, 10, () => 1);
    const dead = await waitFor(async () => (await buffer.deadLetter.list())[0], {
      timeoutMs: 10_000,
      what: 'the dead letter',
    });
    // Firehose's ErrorCode is the last error, so it is in the dead letter's reason.
    assert.match(
      dead.reason,
      /^retry limit reached \(max_times 2\); last error: 1 records to retry: ServiceUnavailableException \(Slow down\.\) ×1$/,
      dead.reason,
    );
    const shown = await buffer.deadLetter.show(dead.id);
    assert.deepEqual(
      shown?.entries.map((e) => (e.record as { id: number }).id),
      [3],
    );
    assert.deepEqual(
      deliveredIds().sort((a, b) => a - b),
      [0, 1, 2, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(fake.calls.length, 3, 'a first try and two retries of record 3 alone');
    assert.deepEqual(
      fake.calls.slice(1).map((c) => c.records.length),
      [1, 1],
    );
  });
});
