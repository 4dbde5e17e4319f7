import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { HaltError, RetryableError } from '../../../src/core/errors.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import type { Output } from '../../../src/outputs/output.ts';
import { awsJsonError } from '../../support/aws-json-fake.ts';
import { CloudWatchFake, CW_LIMITS, THROTTLED, UNAVAILABLE } from '../../support/cloudwatch-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { waitFor } from '../../support/wait.ts';
import { chunkOf, chunkOfTags, cloudwatch, rawRecordChunk, T0 } from './setup.ts';

/**
 * What the cloudwatch_logs output sends, driven through @aws-sdk/client-cloudwatch-logs against
 * the fake: messages, destinations, PutLogEvents within every rule whatever the chunk, groups and
 * streams created once, and each of CloudWatch's answers as the driver must act on it.
 */

let fake: CloudWatchFake;
const outputs: Output[] = [];
/** The fake's clock: an hour after the records' T0. */
const NOW = (T0 + 3600) * 1000;

before(async () => {
  fake = await CloudWatchFake.start();
});
beforeEach(() => {
  fake.now = () => NOW;
  fake.addGroup('app');
});
afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  fake.reset();
});
after(() => fake.close());

const output = (options: Record<string, unknown> = {}, metrics?: Metrics) =>
  cloudwatch(fake, outputs, options, metrics);

/** No PutLogEvents broke a rule, and the fake took every one. */
function assertWithinLimits(): void {
  const puts = fake.callsOf('PutLogEvents');
  assert.ok(puts.length > 0, 'calls were made');
  for (const call of puts) {
    assert.equal(call.answer, '200', `a call answered ${call.answer}`);
    assert.ok(call.events.length <= CW_LIMITS.events, `${call.events.length} events in one call`);
    assert.ok(call.bytes <= CW_LIMITS.callBytes, `${call.bytes} bytes in one call`);
    const times = call.events.map((e) => e.timestamp);
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'in time order',
    );
    assert.ok(times[times.length - 1]! - times[0]! <= CW_LIMITS.spanMs, 'within 24 hours');
  }
  assert.equal(fake.callsOf('DescribeLogStreams').length, 0, 'no DescribeLogStreams');
}

describe('cloudwatch_logs output: messages', () => {
  it('each record as JSON, its time as the timestamp (ms), through a signed PutLogEvents without a sequence token', async () => {
    const chunk = chunkOf([{ a: 1 }, { msg: 'é "q"' }], { at: (i) => T0 * 1000 + 250 + i });
    assert.equal(await output().write(chunk, NO_DEADLINE), undefined);
    assert.deepEqual(fake.events('app', 'main'), [
      { timestamp: T0 * 1000 + 250, message: '{"a":1}' },
      { timestamp: T0 * 1000 + 251, message: '{"msg":"é \\"q\\""}' },
    ]);
    const [put] = fake.callsOf('PutLogEvents');
    assert.equal(put!.accessKeyId, 'FAKEKEY');
    assert.equal(put!.request.sequenceToken, undefined);
    assert.equal(put!.headers['x-amzn-logs-format'], undefined, 'no EMF header with log_format json');
  });

  it('log_key sends that field raw; a record without it, or with an empty one, is rejected alone', async () => {
    const result = await output({ log_key: 'log' }).write(
      chunkOf([{ log: 'line one', stream: 'stdout' }, { other: 1 }, { log: '' }, { log: { nested: true } }]),
      NO_DEADLINE,
    );
    assert.deepEqual(fake.messages('app', 'main'), ['line one', '{"nested":true}']);
    assert.deepEqual(
      result?.reject?.map((r) => [r.entry.record, r.reason]),
      [
        [{ other: 1 }, 'the record has no "log" field (log_key)'],
        [{ log: '' }, 'an empty message: CloudWatch Logs takes no empty event'],
      ],
    );
  });

  it('log_key bytes that are not UTF-8 are sent as the text they decode to, and counted as such', async () => {
    // {"log": "a\xffb"}: a str whose bytes are not UTF-8, as a sender may put them.
    const chunk = rawRecordChunk([0x81, 0xa3, ...Buffer.from('log'), 0xa3, 0x61, 0xff, 0x62]);
    assert.equal(await output({ log_key: 'log' }).write(chunk, NO_DEADLINE), undefined);
    assert.deepEqual(fake.messages('app', 'main'), ['a\ufffdb']);
    assert.equal(fake.callsOf('PutLogEvents')[0]!.bytes, Buffer.byteLength('a\ufffdb') + 26);
  });
});

describe('cloudwatch_logs output: destinations', () => {
  it('log_stream_prefix + tag, one stream per tag', async () => {
    await output({ log_stream_name: undefined, log_stream_prefix: 'from-' }).write(
      chunkOfTags([
        { tag: 'kube.web', records: [{ n: 1 }, { n: 2 }] },
        { tag: 'kube.db', records: [{ n: 3 }] },
      ]),
      NO_DEADLINE,
    );
    assert.deepEqual(fake.messages('app', 'from-kube.web'), ['{"n":1}', '{"n":2}']);
    assert.deepEqual(fake.messages('app', 'from-kube.db'), ['{"n":3}']);
  });

  it('templates: $TAG[n] and record fields name the group and stream; a record lacking a field goes to the fixed names; names made valid', async () => {
    fake.addGroup('ns-shop');
    fake.addGroup('ns-pay');
    const records = [
      { kubernetes: { namespace_name: 'shop', pod_name: 'web-1' }, n: 0 },
      { kubernetes: { namespace_name: 'pay', pod_name: 'api:7*' }, n: 1 },
      { kubernetes: { namespace_name: 'shop', pod_name: 'web-2' }, n: 2 },
      { n: 3 },
      { kubernetes: { namespace_name: 'shop', pod_name: 'web-1' }, n: 4 },
    ];
    await output({
      log_group_template: "ns-$kubernetes['namespace_name']",
      log_stream_template: "$TAG[1].$kubernetes['pod_name']",
      log_stream_name: 'fallback',
    }).write(chunkOf(records, { tag: 'kube.containers' }), NO_DEADLINE);
    const ns = (group: string, stream: string) =>
      fake.messages(group, stream).map((m) => (JSON.parse(m) as { n: number }).n);
    assert.deepEqual(ns('ns-shop', 'containers.web-1'), [0, 4]);
    assert.deepEqual(ns('ns-shop', 'containers.web-2'), [2]);
    assert.deepEqual(ns('ns-pay', 'containers.api_7_'), [1], '":" and "*" are not in stream names');
    assert.deepEqual(ns('app', 'fallback'), [3]);
    assertWithinLimits();
  });
});

describe('cloudwatch_logs output: PutLogEvents within the rules', () => {
  it('25,000 small events: calls of at most 10,000', async () => {
    const records = Array.from({ length: 25_000 }, (_, i) => ({ i }));
    await output().write(chunkOf(records, { at: (i) => T0 * 1000 + i }), NO_DEADLINE);
    assertWithinLimits();
    assert.deepEqual(
      fake.callsOf('PutLogEvents').map((c) => c.events.length),
      [10_000, 10_000, 5_000],
    );
    assert.deepEqual(
      fake.messages('app', 'main').map((m) => (JSON.parse(m) as { i: number }).i),
      records.map((r) => r.i),
    );
  });

  it('large events: calls of at most 1,048,576 bytes counting 26 per event', async () => {
    // 100 events of 40,000 bytes: 25 fit in 1 MiB with their 26 bytes each (26 × 40,026 > 1 MiB).
    const records = Array.from({ length: 100 }, (_, i) => ({ i, pad: 'x'.repeat(40_000 - 20) }));
    await output().write(chunkOf(records), NO_DEADLINE);
    assertWithinLimits();
    assert.equal(fake.events('app', 'main').length, 100);
    const sizes = fake.callsOf('PutLogEvents').map((c) => c.bytes);
    assert.ok(Math.max(...sizes) > CW_LIMITS.callBytes - 40_100, `calls are filled: ${sizes.join(', ')}`);
  });

  it('events out of time order in the chunk are sent in order', async () => {
    const offsets = [5, 1, 4, 1, 3, 9, 0];
    await output().write(
      chunkOf(
        offsets.map((o, i) => ({ o, i })),
        { at: (i) => (T0 + offsets[i]!) * 1000 },
      ),
      NO_DEADLINE,
    );
    assertWithinLimits();
    assert.deepEqual(
      fake.callsOf('PutLogEvents')[0]!.events.map((e) => JSON.parse(e.message) as { o: number; i: number }),
      [
        { o: 0, i: 6 },
        { o: 1, i: 1 },
        { o: 1, i: 3 },
        { o: 3, i: 4 },
        { o: 4, i: 2 },
        { o: 5, i: 0 },
        { o: 9, i: 5 },
      ],
      'stable: events of one millisecond keep their order',
    );
  });

  it('events spanning 3 days: no call spans more than 24 hours, every event stored once', async () => {
    fake.now = () => (T0 + 4 * 86_400) * 1000;
    const hours = [0, 30, 5, 71, 23.99, 24, 48, 47, 1];
    await output().write(
      chunkOf(
        hours.map((h) => ({ h })),
        { at: (i) => Math.round((T0 + hours[i]! * 3600) * 1000) },
      ),
      NO_DEADLINE,
    );
    assertWithinLimits();
    assert.ok(fake.callsOf('PutLogEvents').length >= 3);
    assert.deepEqual(
      fake.messages('app', 'main').map((m) => (JSON.parse(m) as { h: number }).h),
      [...hours].sort((a, b) => a - b),
    );
  });

  it('an event over 1 MiB is rejected alone (oversize: reject)', async () => {
    const big = 'b'.repeat(CW_LIMITS.eventBytes);
    const result = await output().write(chunkOf([{ n: 1 }, { big }, { n: 2 }]), NO_DEADLINE);
    assert.deepEqual(fake.messages('app', 'main'), ['{"n":1}', '{"n":2}']);
    assert.equal(result?.reject?.length, 1);
    assert.match(
      result!.reject![0]!.reason,
      /an event of 1048\d{3} bytes \(message \+ 26\) is over CloudWatch Logs' limit of 1048576 bytes/,
    );
  });

  it('oversize: truncate cuts it to exactly the limit, at a character boundary, marked', async () => {
    const big = 'é'.repeat(CW_LIMITS.eventBytes);
    assert.equal(await output({ oversize: 'truncate' }).write(chunkOf([{ big }]), NO_DEADLINE), undefined);
    const [message] = fake.messages('app', 'main');
    assert.ok(message!.endsWith('éé[truncated]'));
    const bytes = Buffer.byteLength(message!) + 26;
    assert.ok(bytes <= CW_LIMITS.eventBytes && bytes >= CW_LIMITS.eventBytes - 1, `${bytes} bytes`);
    assertWithinLimits();
  });
});

describe('cloudwatch_logs output: rejectedLogEventsInfo', () => {
  it('events 15 days old, past the retention, and 3 hours ahead: exactly those rejected with the reason, counted', async () => {
    fake.groups.get('app')!.retentionInDays = 1;
    const day = 86_400_000;
    const metrics = new Metrics();
    const at = [NOW - 15 * day, NOW - 15 * day + 1, NOW - 2 * day, NOW - 60_000, NOW, NOW + 3 * 3_600_000];
    // Within one call the span must be ≤ 24 hours: the output makes several.
    const result = await output({}, metrics).write(
      chunkOf(
        at.map((_, i) => ({ i })),
        { at: (i) => at[i]! },
      ),
      NO_DEADLINE,
    );
    assert.deepEqual(
      fake.messages('app', 'main').map((m) => (JSON.parse(m) as { i: number }).i),
      [3, 4],
    );
    const refused = result?.reject?.map((r) => [
      (r.entry.record as { i: number }).i,
      r.reason.match(/: (\w+)\)/)?.[1],
    ]);
    assert.deepEqual(refused, [
      [0, 'tooOld'],
      [1, 'tooOld'],
      [2, 'expired'],
      [5, 'tooNew'],
    ]);
    assert.equal(
      result!.reject![0]!.reason,
      'CloudWatch Logs refused the event (rejectedLogEventsInfo: tooOld): its time is more than 14 days before the call',
    );
    assert.deepEqual(result?.retry ?? [], []);
    const text = await metrics.registry.metrics();
    const counted = (reason: string) =>
      sample(text, 'estuary_cloudwatch_events_rejected_total', { plugin_id: 'cw', reason }).value;
    assert.deepEqual([counted('tooOld'), counted('expired'), counted('tooNew')], [2, 1, 1]);
  });
});

describe('cloudwatch_logs output: groups and streams', () => {
  it('a stream is created once, before its first PutLogEvents; later writes go straight to PutLogEvents', async () => {
    const o = output();
    await o.write(chunkOf([{ n: 1 }]), NO_DEADLINE);
    await o.write(chunkOf([{ n: 2 }], { id: 'c2' }), NO_DEADLINE);
    assert.deepEqual(
      fake.calls.map((c) => `${c.op} ${c.answer}`),
      ['CreateLogStream 200', 'PutLogEvents 200', 'PutLogEvents 200'],
    );
  });

  it('a stream that exists already is taken as it is (ResourceAlreadyExistsException)', async () => {
    fake.addStream('app', 'main');
    fake.groups.get('app')!.streams.get('main')!.push({ timestamp: 1, message: 'before' });
    await output().write(chunkOf([{ n: 1 }]), NO_DEADLINE);
    assert.deepEqual(fake.messages('app', 'main'), ['before', '{"n":1}']);
    assert.equal(fake.callsOf('CreateLogStream')[0]!.answer, 'ResourceAlreadyExistsException');
  });

  it('auto_create_group: the group created with its class, tags and retention, once', async () => {
    const o = output({
      log_group_name: 'new/group',
      auto_create_group: true,
      log_retention_days: 14,
      log_group_class: 'INFREQUENT_ACCESS',
      log_group_tags: { team: 'web' },
    });
    await o.write(chunkOf([{ n: 1 }]), NO_DEADLINE);
    await o.write(chunkOf([{ n: 2 }], { id: 'c2' }), NO_DEADLINE);
    const group = fake.groups.get('new/group')!;
    assert.equal(group.retentionInDays, 14);
    assert.equal(group.logGroupClass, 'INFREQUENT_ACCESS');
    assert.deepEqual(group.tags, { team: 'web' });
    assert.deepEqual(fake.messages('new/group', 'main'), ['{"n":1}', '{"n":2}']);
    assert.deepEqual(
      fake.calls.map((c) => `${c.op} ${c.answer}`),
      [
        'CreateLogStream ResourceNotFoundException',
        'CreateLogGroup 200',
        'PutRetentionPolicy 200',
        'CreateLogStream 200',
        'PutLogEvents 200',
        'PutLogEvents 200',
      ],
    );
  });

  it('a group that exists already keeps its retention', async () => {
    fake.addGroup('kept', 30);
    await output({ log_group_name: 'kept', auto_create_group: true, log_retention_days: 1 }).write(
      chunkOf([{ n: 1 }]),
      NO_DEADLINE,
    );
    assert.equal(fake.groups.get('kept')!.retentionInDays, 30);
    assert.equal(fake.callsOf('PutRetentionPolicy').length, 0);
    assert.deepEqual(fake.messages('kept', 'main'), ['{"n":1}']);
  });

  it('a missing group without auto_create_group halts the output, naming the group and the fix; nothing is created', async () => {
    await assert.rejects(
      output({ log_group_name: 'absent' }).write(chunkOf([{ n: 1 }]), NO_DEADLINE),
      (err) => {
        assert.ok(err instanceof HaltError, String(err));
        assert.match(
          err.message,
          /ResourceNotFoundException: The specified log group does not exist\..*create the log group absent, or set auto_create_group: true/,
        );
        return true;
      },
    );
    assert.equal(fake.callsOf('CreateLogGroup').length, 0);
    assert.equal(fake.callsOf('PutLogEvents').length, 0);
  });

  it('a missing stream with auto_create_stream false halts; the output resumes once the stream exists', async () => {
    const o = output({ auto_create_stream: false });
    await assert.rejects(o.write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
      assert.ok(err instanceof HaltError);
      assert.match(
        err.message,
        /log stream does not exist.*create the log stream main in app, or set auto_create_stream: true/,
      );
      return true;
    });
    assert.equal(fake.callsOf('CreateLogStream').length, 0);
    fake.addStream('app', 'main');
    assert.equal(await o.write(chunkOf([{ n: 1 }]), NO_DEADLINE), undefined);
    assert.deepEqual(fake.messages('app', 'main'), ['{"n":1}']);
  });

  it('a stream deleted after it was created is created again and the events sent', async () => {
    const o = output();
    await o.write(chunkOf([{ n: 1 }]), NO_DEADLINE);
    fake.groups.get('app')!.streams.delete('main');
    assert.equal(await o.write(chunkOf([{ n: 2 }], { id: 'c2' }), NO_DEADLINE), undefined);
    assert.deepEqual(fake.messages('app', 'main'), ['{"n":2}']);
    assert.equal(fake.callsOf('CreateLogStream').length, 2);
  });

  it('CreateLogGroup refusing its settings (InvalidParameterException) halts: the data is not at fault', async () => {
    fake.script = (c) =>
      c.op === 'CreateLogGroup'
        ? awsJsonError(400, 'InvalidParameterException', 'Invalid tag key')
        : undefined;
    const o = output({ log_group_name: 'g', auto_create_group: true, log_group_tags: { team: 'web' } });
    await assert.rejects(o.write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
      assert.ok(err instanceof HaltError, String(err));
      assert.match(
        err.message,
        /g: CreateLogGroup: InvalidParameterException: Invalid tag key \(check the output's log group settings\)/,
      );
      return true;
    });
  });

  it('PutRetentionPolicy denied: the output halts; once allowed, the next write sets the retention', async () => {
    fake.deniedOps.add('PutRetentionPolicy');
    const o = output({ log_group_name: 'g', auto_create_group: true, log_retention_days: 7 });
    await assert.rejects(o.write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
      assert.ok(err instanceof HaltError);
      assert.match(err.message, /g: PutRetentionPolicy: .*AccessDeniedException.*logs:PutRetentionPolicy/);
      return true;
    });
    fake.deniedOps.clear();
    assert.equal(await o.write(chunkOf([{ n: 1 }]), NO_DEADLINE), undefined);
    assert.equal(fake.groups.get('g')!.retentionInDays, 7);
    assert.equal(fake.callsOf('CreateLogGroup').length, 1, 'the group was not created twice');
  });
});

describe('cloudwatch_logs output: errors', () => {
  it('ThrottlingException ("Rate exceeded") and ServiceUnavailableException are retried', async () => {
    for (const reply of [THROTTLED, UNAVAILABLE]) {
      fake.script = (c) => (c.op === 'PutLogEvents' ? reply : undefined);
      await assert.rejects(output().write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
        assert.ok(err instanceof RetryableError, String(err));
        assert.match(err.message, /ThrottlingException: Rate exceeded|ServiceUnavailableException/);
        return true;
      });
    }
    assert.deepEqual(fake.messages('app', 'main'), []);
  });

  it('a call throttled among others: only its events come back to be retried', async () => {
    fake.addGroup('other');
    let puts = 0;
    fake.script = (c) => (c.op === 'PutLogEvents' && ++puts === 1 ? THROTTLED : undefined);
    const result = await output({ log_group_template: '$group' }).write(
      chunkOf([
        { group: 'app', n: 1 },
        { group: 'other', n: 2 },
      ]),
      NO_DEADLINE,
    );
    assert.deepEqual(
      result?.retry?.map((e) => e.record),
      [{ group: 'app', n: 1 }],
    );
    assert.deepEqual(fake.messages('other', 'main'), ['{"group":"other","n":2}']);
  });

  it("InvalidParameterException for the data rejects the call's events with CloudWatch's words", async () => {
    fake.script = (c) =>
      c.op === 'PutLogEvents'
        ? {
            status: 400,
            headers: { 'content-type': 'application/x-amz-json-1.1' },
            body: JSON.stringify({ __type: 'InvalidParameterException', message: 'Log event too large' }),
          }
        : undefined;
    const metrics = new Metrics();
    const result = await output({}, metrics).write(chunkOf([{ n: 1 }, { n: 2 }]), NO_DEADLINE);
    assert.deepEqual(
      result?.reject?.map((r) => r.entry.record),
      [{ n: 1 }, { n: 2 }],
    );
    assert.match(
      result!.reject![0]!.reason,
      /^cloudwatch_logs app main: PutLogEvents: InvalidParameterException: Log event too large$/,
    );
    const text = await metrics.registry.metrics();
    assert.equal(
      sample(text, 'estuary_cloudwatch_events_rejected_total', {
        plugin_id: 'cw',
        reason: 'InvalidParameterException',
      }).value,
      2,
    );
  });

  it('AccessDenied and an unknown access key halt the output', async () => {
    fake.deniedKeys.add('FAKEKEY');
    await assert.rejects(output().write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
      assert.ok(err instanceof HaltError);
      assert.match(err.message, /AccessDeniedException/);
      return true;
    });
    fake.deniedKeys.clear();
    fake.knownKeys.delete('FAKEKEY');
    try {
      await assert.rejects(output().write(chunkOf([{ n: 1 }]), NO_DEADLINE), (err) => {
        assert.ok(err instanceof HaltError);
        assert.match(err.message, /UnrecognizedClientException/);
        return true;
      });
    } finally {
      fake.knownKeys.add('FAKEKEY');
    }
  });

  it('a write past its deadline is abandoned as retryable, nothing left waiting', async () => {
    fake.script = (c) => (c.op === 'PutLogEvents' ? 'hang' : undefined);
    const controller = new AbortController();
    const pending = output().write(chunkOf([{ n: 1 }]), { signal: controller.signal });
    await waitFor(() => fake.callsOf('PutLogEvents').length > 0, { what: 'the PutLogEvents sent' });
    const started = Date.now();
    controller.abort(new Error('write_timeout 50ms'));
    await assert.rejects(pending, (err) => {
      assert.ok(err instanceof RetryableError);
      assert.match(err.message, /abandoned: write_timeout 50ms/);
      return true;
    });
    assert.ok(Date.now() - started < 5000);
  });
});
