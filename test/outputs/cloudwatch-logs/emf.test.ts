import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Output } from '../../../src/outputs/output.ts';
import { CloudWatchFake } from '../../support/cloudwatch-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { EMF_SCHEMA, targetProblems, validateEmf } from './emf-schema.ts';
import { chunkOf, cloudwatch, rawRecordChunk, T0 } from './setup.ts';

/**
 * log_format json/emf: the documents CloudWatch receives satisfy the Embedded Metric Format's
 * JSON schema (checked with ajv) and its rules on target members, carry the record whole, and
 * go with the `x-amzn-logs-format: json/emf` header.
 */

let fake: CloudWatchFake;
const outputs: Output[] = [];

before(async () => {
  fake = await CloudWatchFake.start();
});
beforeEach(() => {
  fake.now = () => (T0 + 60) * 1000;
  fake.addGroup('app');
});
afterEach(async () => {
  for (const o of outputs.splice(0)) await o.stop?.();
  fake.reset();
});
after(() => fake.close());

/** The seed's Go application, as it logs. */
const goApp = (count: number, level = 'info') => ({
  count,
  level,
  msg: 'batch processed',
  service: 'golang-app',
  duration_ms: 12.5 + count,
});

const EMF = {
  log_format: 'json/emf',
  metric_namespace: 'golang-app',
  metric_dimensions: [['level'], ['level', 'service']],
  metrics: [
    { name: 'count', unit: 'Count' },
    { name: 'duration_ms', unit: 'Milliseconds', storage_resolution: 1 },
  ],
};

const documents = () => fake.messages('app', 'main').map((m) => JSON.parse(m) as Record<string, unknown>);

function assertEmf(doc: Record<string, unknown>): void {
  assert.ok(validateEmf(doc), JSON.stringify(validateEmf.errors));
  assert.deepEqual(targetProblems(doc), []);
}

describe('cloudwatch_logs output: log_format json/emf', () => {
  it('the schema written from the specification refuses what the specification refuses', () => {
    const good = {
      _aws: {
        Timestamp: 1,
        CloudWatchMetrics: [{ Namespace: 'n', Dimensions: [[]], Metrics: [{ Name: 'm', Unit: 'Count' }] }],
      },
      m: 1,
    };
    assert.ok(validateEmf(good));
    const bad = (change: (d: typeof good) => void) => {
      const d = structuredClone(good);
      change(d);
      return validateEmf(d);
    };
    assert.equal(
      bad((d) => Object.assign(d._aws, { Timestamp: '1' })),
      false,
    );
    assert.equal(
      bad((d) => Object.assign(d._aws.CloudWatchMetrics[0]!, { Dimensions: [] })),
      false,
    );
    assert.equal(
      bad((d) => Object.assign(d._aws.CloudWatchMetrics[0]!.Metrics[0]!, { Unit: 'Requests' })),
      false,
    );
    assert.equal(
      bad((d) => Object.assign(d._aws.CloudWatchMetrics[0]!, { Extra: 1 })),
      false,
    );
    assert.equal(
      bad((d) =>
        Object.assign(d._aws.CloudWatchMetrics[0]!, {
          Dimensions: [Array.from({ length: 31 }, (_, i) => `d${i}`)],
        }),
      ),
      false,
    );
    assert.deepEqual(targetProblems({ ...good, m: 'one' }), ['metric m: "one"']);
    assert.equal(EMF_SCHEMA.required[0], '_aws');
  });

  it("the Go app's log lines become EMF documents: the record whole, _aws naming its metrics, the header sent", async () => {
    await cloudwatch(fake, outputs, EMF).write(
      chunkOf([goApp(0), goApp(3, 'warn')], { at: (i) => T0 * 1000 + 123 + i }),
      NO_DEADLINE,
    );
    const docs = documents();
    assert.equal(docs.length, 2);
    for (const doc of docs) assertEmf(doc);
    assert.deepEqual(docs[0], {
      ...goApp(0),
      _aws: {
        Timestamp: T0 * 1000 + 123,
        CloudWatchMetrics: [
          {
            Namespace: 'golang-app',
            Dimensions: [['level'], ['level', 'service']],
            Metrics: [
              { Name: 'count', Unit: 'Count' },
              { Name: 'duration_ms', Unit: 'Milliseconds', StorageResolution: 1 },
            ],
          },
        ],
      },
    });
    assert.equal((docs[1] as { _aws: { Timestamp: number } })._aws.Timestamp, T0 * 1000 + 124);
    const [put] = fake.callsOf('PutLogEvents');
    assert.equal(put!.headers['x-amzn-logs-format'], 'json/emf');
    assert.match(
      String(put!.headers.authorization),
      /SignedHeaders=[^,]*x-amzn-logs-format/,
      'the header is signed',
    );
  });

  it('metrics and dimension sets the record cannot fill are left out; a record with no metric left goes as plain JSON', async () => {
    await cloudwatch(fake, outputs, EMF).write(
      chunkOf([
        { count: 5, level: 'info' }, // no service: only the [level] set
        { count: 'five', duration_ms: 3, level: 'info', service: 's' }, // count not a number
        { level: 'info', service: 's' }, // no metric at all
        { count: 1, duration_ms: Number.NaN, service: 's' }, // no level: no set left
        { count: [1, 2, 3], level: 'debug', service: 's' }, // an array of values
        {},
        { count: 1, level: ' \t', service: 's' }, // a blank dimension value: no set left
        { count: 1, level: '\u00a0', service: 's' }, // blank too, beyond ASCII
        { count: 1, level: 'é'.repeat(600), service: 's' }, // 1200 bytes, 600 characters: taken
        { count: 1, level: 'x'.repeat(1025), service: 's' }, // over 1024 characters
      ]),
      NO_DEADLINE,
    );
    const docs = documents();
    const directive = (d: Record<string, unknown>) =>
      (d._aws as { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] } | undefined)
        ?.CloudWatchMetrics[0];
    assertEmf(docs[0]!);
    assert.deepEqual(directive(docs[0]!)?.Dimensions, [['level']]);
    assertEmf(docs[1]!);
    assert.deepEqual(
      directive(docs[1]!)?.Metrics.map((m) => m.Name),
      ['duration_ms'],
    );
    assert.deepEqual(docs[2], { level: 'info', service: 's' });
    assert.deepEqual(docs[3], { count: 1, duration_ms: null, service: 's' });
    assertEmf(docs[4]!);
    assert.deepEqual(docs[5], {});
    assert.equal(docs[6]!._aws, undefined);
    assert.equal(docs[7]!._aws, undefined);
    assertEmf(docs[8]!);
    assert.deepEqual(directive(docs[8]!)?.Dimensions, [['level'], ['level', 'service']]);
    assert.equal(docs[9]!._aws, undefined);
  });

  it('a record the bytes cannot vouch for (a number key) is read decoded, to the same document', async () => {
    // {1: "a", "count": 3, "level": "info"}: an integer key, as some senders write maps.
    const chunk = rawRecordChunk([
      0x83,
      0x01,
      0xa1,
      ...Buffer.from('a'),
      0xa5,
      ...Buffer.from('count'),
      0x03,
      0xa5,
      ...Buffer.from('level'),
      0xa4,
      ...Buffer.from('info'),
    ]);
    await cloudwatch(fake, outputs, EMF).write(chunk, NO_DEADLINE);
    const [doc] = documents();
    assertEmf(doc!);
    assert.deepEqual({ ...doc, _aws: undefined }, { 1: 'a', count: 3, level: 'info', _aws: undefined });
    assert.deepEqual(
      (doc!._aws as { CloudWatchMetrics: { Dimensions: string[][] }[] }).CloudWatchMetrics[0]!.Dimensions,
      [['level']],
    );
  });

  it('without metric_dimensions the metrics have one empty dimension set', async () => {
    await cloudwatch(fake, outputs, { ...EMF, metric_dimensions: undefined }).write(
      chunkOf([goApp(1)]),
      NO_DEADLINE,
    );
    const [doc] = documents();
    assertEmf(doc!);
    assert.deepEqual(
      (doc!._aws as { CloudWatchMetrics: { Dimensions: unknown }[] }).CloudWatchMetrics[0]!.Dimensions,
      [[]],
    );
  });

  it('a record that carries its own _aws (an application writing EMF) is sent as it is', async () => {
    const own = {
      _aws: {
        Timestamp: 5,
        CloudWatchMetrics: [{ Namespace: 'mine', Dimensions: [['x']], Metrics: [{ Name: 'y' }] }],
      },
      x: 'a',
      y: 2,
      count: 9,
    };
    await cloudwatch(fake, outputs, EMF).write(chunkOf([own]), NO_DEADLINE);
    assert.deepEqual(documents(), [own]);
  });

  it("log_format json/emf without metrics: records are sent as they are, with the header (Fluent Bit's behaviour)", async () => {
    await cloudwatch(fake, outputs, { log_format: 'json/emf' }).write(chunkOf([goApp(2)]), NO_DEADLINE);
    assert.deepEqual(documents(), [goApp(2)]);
    assert.equal(fake.callsOf('PutLogEvents')[0]!.headers['x-amzn-logs-format'], 'json/emf');
  });
});
