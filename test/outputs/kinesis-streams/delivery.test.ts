import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { OutputBuffer } from '../../../src/buffer/buffer.ts';
import { MemoryBackend } from '../../../src/buffer/memory/memory-store.ts';
import { resolveBufferSettings } from '../../../src/config/schema.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { kinesisStreamsOutput } from '../../../src/outputs/kinesis-streams/index.ts';
import type { Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { Kinesalite, type RecordFault, ThrottlingProxy } from '../../support/kinesalite.ts';
import { rng } from '../../support/msgpack-gen.ts';
import { emitTo } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import { deaggregate } from './deaggregate.ts';

/**
 * kinesis_streams behind the real buffer, Kinesis failing a fifth of the records of every call
 * (ProvisionedThroughputExceededException, InternalFailure): read back from kinesalite and
 * de-aggregated, every record is there exactly once, and the metric counts what was refused.
 */

useAwsTestEnv({ region: 'us-east-1' });

let server: Kinesalite;
let proxy: ThrottlingProxy;
let open: { buffer: OutputBuffer; output: Output }[] = [];
let streams = 0;

before(async () => {
  server = await Kinesalite.start();
  proxy = await ThrottlingProxy.start(server.url);
});
afterEach(async () => {
  for (const { buffer, output } of open) {
    await buffer.stop(Date.now());
    await output.stop?.();
  }
  open = [];
  proxy.fault = () => undefined;
  proxy.failed.clear();
});
after(async () => {
  await proxy.close();
  await server.close();
});

const THROTTLED: RecordFault = {
  ErrorCode: 'ProvisionedThroughputExceededException',
  ErrorMessage: 'Rate exceeded for shard shardId-000000000000 in stream logs under account 000000000000.',
};
const INTERNAL: RecordFault = { ErrorCode: 'InternalFailure', ErrorMessage: 'Internal service failure.' };

for (const aggregation of ['none', 'kpl']) {
  describe(`kinesis_streams behind the buffer (aggregation ${aggregation})`, () => {
    it('20% of the records of every call fail: every record delivered exactly once', async () => {
      const name = `logs-${++streams}`;
      await server.createStream(name, 2);
      const roll = rng(16);
      proxy.fault = () => {
        const r = roll();
        return r < 0.15 ? THROTTLED : r < 0.2 ? INTERNAL : undefined;
      };
      const metrics = new Metrics();
      const deps = { id: 'ks', logger: silentLogger(), metrics, configDir: '/' };
      const output = kinesisStreamsOutput.create(
        kinesisStreamsOutput.schema.parse({
          stream: name,
          endpoint: proxy.url,
          partition_key: 'pod',
          aggregation,
        }),
        deps,
      );
      const buffer = new MemoryBackend().create(
        output,
        resolveBufferSettings(kinesisStreamsOutput.bufferDefaults, {
          flush_interval: 10,
          chunk_limit_records: 1500,
          retry: { wait: 5, randomize: false, exponential_backoff_base: 1.5, max_interval: 50 },
        }),
        deps,
      );
      metrics.registerOutput(buffer);
      await output.start?.();
      await buffer.start();
      open.push({ buffer, output });
      const N = 4000;
      for (let start = 0; start < N; start += 1000) {
        const entries = Array.from({ length: 1000 }, (_, k) => ({
          time: new EventTime(1_700_000_000, 0),
          record: { id: start + k, pod: `pod-${(start + k) % 5}`, log: 'l'.repeat((start + k) % 300) },
        }));
        await emitTo(buffer, makeBatch('kube.web', entries));
      }
      const ids = async () =>
        deaggregate(await server.records(name)).map(
          (u) => (JSON.parse(u.data.toString()) as { id: number }).id,
        );
      await waitFor(async () => (await ids()).length >= N, {
        timeoutMs: 60_000,
        what: 'every record in the stream',
      });
      await waitFor(async () => (await buffer.stats()).queueLength === 0, { what: 'the buffer drained' });
      const got = await ids();
      assert.equal(got.length, N, 'no record twice');
      assert.deepEqual(
        got.sort((a, b) => a - b),
        Array.from({ length: N }, (_, i) => i),
      );
      const refused = [...proxy.failed.values()].reduce((a, b) => a + b, 0);
      assert.ok(refused >= (aggregation === 'kpl' ? 3 : 100), `Kinesis refused ${refused} records`);
      const text = await metrics.registry.metrics();
      for (const code of ['ProvisionedThroughputExceededException', 'InternalFailure'])
        assert.equal(
          sample(text, 'estuary_aws_records_failed_total', { plugin_id: 'ks', error_code: code }).value,
          proxy.failed.get(code) ?? 0,
          code,
        );
      assert.deepEqual(await buffer.deadLetter.list(), []);
    });
  });
}
