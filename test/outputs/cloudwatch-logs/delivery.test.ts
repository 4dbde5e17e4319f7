import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { MemoryBackend } from '../../../src/buffer/memory/memory-store.ts';
import { resolveBufferSettings } from '../../../src/config/schema.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { cloudwatchLogsOutput } from '../../../src/outputs/cloudwatch-logs/index.ts';
import { CloudWatchFake, CW_LIMITS, THROTTLED } from '../../support/cloudwatch-fake.ts';
import { emitTo } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import './setup.ts';

/**
 * The output behind the real buffer, with CloudWatch throttling a third of the calls and
 * refusing events for their time: every record lands in its templated stream exactly once and
 * in time order, the 15-day-old and 3-hours-ahead ones are dead-lettered with CloudWatch's
 * reason (Fluent Bit counts them as sent), and the metric counts them.
 */

let fake: CloudWatchFake;
/** Stops what a test started: each buffer (draining nothing), then its output. */
const started: (() => Promise<void>)[] = [];

before(async () => {
  fake = await CloudWatchFake.start();
});
afterEach(async () => {
  for (const stop of started.splice(0)) await stop();
  fake.reset();
});
after(() => fake.close());

async function setup(options: Record<string, unknown>) {
  const metrics = new Metrics();
  const deps = { id: 'cw', logger: silentLogger(), metrics, configDir: '/' };
  const output = cloudwatchLogsOutput.create(
    cloudwatchLogsOutput.schema.parse({
      log_group_name: 'fallback',
      log_stream_name: 'main',
      endpoint: fake.url,
      ...options,
    }),
    deps,
  );
  const settings = resolveBufferSettings(cloudwatchLogsOutput.bufferDefaults, {
    flush_interval: 10,
    chunk_limit_records: 700,
    flush_thread_count: 2,
    retry: { wait: 5, randomize: false, exponential_backoff_base: 1.5, max_interval: 50 },
  });
  const buffer = new MemoryBackend().create(output, settings, deps);
  metrics.registerOutput(buffer);
  await output.start?.();
  await buffer.start();
  started.push(async () => {
    await buffer.stop(Date.now());
    await output.stop?.();
  });
  return { buffer, metrics };
}

const DAY = 86_400_000;
const PODS = ['web-1', 'web-2', 'api-1'];
const NAMESPACES = ['shop', 'pay'];

describe('cloudwatch_logs output behind the buffer', () => {
  it('throttled calls and refused times: every record once, in its stream, in time order; the refused dead-lettered with the reason', async () => {
    let puts = 0;
    fake.script = (c) => (c.op === 'PutLogEvents' && ++puts % 3 === 1 ? THROTTLED : undefined);
    const { buffer, metrics } = await setup({
      auto_create_group: true,
      log_retention_days: 30,
      log_group_template: "/k8s/$kubernetes['namespace_name']",
      log_stream_template: "$kubernetes['pod_name']",
    });
    const now = Date.now();
    const N = 3000;
    const refusedIds = new Set<number>();
    const entries = Array.from({ length: N }, (_, id) => {
      // The last hour, a millisecond apart, a little out of order (ids shuffled by 7s): every
      // 101st 15 days old, every 211th 3 hours ahead.
      let at = now - 3_600_000 + id * 1000 + ((id * 7) % 10) * 100;
      if (id % 101 === 50) at = now - 15 * DAY;
      else if (id % 211 === 100) at = now + 3 * 3_600_000;
      if (id % 101 === 50 || id % 211 === 100) refusedIds.add(id);
      const record = {
        id,
        kubernetes: { namespace_name: NAMESPACES[id % 2]!, pod_name: PODS[id % 3]! },
        log: `line ${id}`,
      };
      return { time: EventTime.fromMillis(at), record };
    });
    for (let i = 0; i < N; i += 250)
      await emitTo(buffer, makeBatch('kube.containers', entries.slice(i, i + 250)));

    const stored = () =>
      [...fake.groups.entries()].flatMap(([group, g]) =>
        [...g.streams.entries()].flatMap(([stream, events]) =>
          events.map((e) => ({
            group,
            stream,
            time: e.timestamp,
            ...(JSON.parse(e.message) as { id: number }),
          })),
        ),
      );
    await waitFor(
      async () => (await buffer.stats()).queueLength === 0 && stored().length >= N - refusedIds.size,
      {
        timeoutMs: 60_000,
        what: 'every record delivered or refused',
      },
    );
    const all = stored();
    assert.equal(all.length, N - refusedIds.size, 'no record delivered twice');
    assert.deepEqual(
      all.map((e) => e.id).sort((a, b) => a - b),
      entries.map((e) => e.record.id).filter((id) => !refusedIds.has(id)),
    );
    for (const e of all) {
      assert.equal(e.group, `/k8s/${NAMESPACES[e.id % 2]}`);
      assert.equal(e.stream, PODS[e.id % 3]);
    }
    for (const [group, g] of fake.groups) {
      assert.equal(g.retentionInDays, 30, `${group} created with its retention`);
      for (const stream of g.streams.keys()) {
        // As CloudWatch shows the stream: its records, each once, in time order.
        const expected = entries
          .filter(
            ({ record }) =>
              `/k8s/${record.kubernetes.namespace_name}` === group && record.kubernetes.pod_name === stream,
          )
          .filter(({ record }) => !refusedIds.has(record.id))
          .sort((a, b) => a.time.sec - b.time.sec || a.time.nsec - b.time.nsec)
          .map(({ record }) => record.id);
        assert.deepEqual(
          fake.messages(group, stream).map((m) => (JSON.parse(m) as { id: number }).id),
          expected,
        );
      }
    }
    assert.ok(
      fake.callsOf('PutLogEvents').some((c) => c.answer === 'ThrottlingException'),
      'throttled',
    );
    for (const c of fake.callsOf('PutLogEvents')) {
      assert.ok(c.answer === '200' || c.answer === 'ThrottlingException', c.answer);
      assert.ok(c.events.length <= CW_LIMITS.events && c.bytes <= CW_LIMITS.callBytes);
    }
    assert.equal(fake.callsOf('CreateLogGroup').filter((c) => c.answer === '200').length, 2);
    assert.equal(fake.callsOf('DescribeLogStreams').length, 0);

    const dead = await buffer.deadLetter.list();
    const byReason = new Map<string, number[]>();
    for (const d of dead) {
      const shown = await buffer.deadLetter.show(d.id);
      const ids = shown!.entries.map((e) => (e.record as { id: number }).id);
      byReason.set(d.reason, [...(byReason.get(d.reason) ?? []), ...ids]);
    }
    const tooOld = [...refusedIds].filter((id) => id % 101 === 50).sort((a, b) => a - b);
    const tooNew = [...refusedIds].filter((id) => id % 101 !== 50).sort((a, b) => a - b);
    const reasons = [...byReason.keys()].sort();
    assert.deepEqual(reasons, [
      'CloudWatch Logs refused the event (rejectedLogEventsInfo: tooNew): its time is more than 2 hours after the call',
      'CloudWatch Logs refused the event (rejectedLogEventsInfo: tooOld): its time is more than 14 days before the call',
    ]);
    assert.deepEqual(
      byReason.get(reasons[1]!)!.sort((a, b) => a - b),
      tooOld,
    );
    assert.deepEqual(
      byReason.get(reasons[0]!)!.sort((a, b) => a - b),
      tooNew,
    );

    const text = await metrics.registry.metrics();
    const counted = (reason: string) =>
      sample(text, 'estuary_cloudwatch_events_rejected_total', { plugin_id: 'cw', reason }).value;
    assert.deepEqual([counted('tooOld'), counted('tooNew')], [tooOld.length, tooNew.length]);
  });
});
