import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { recordAt } from '../../../bench/records.ts';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { type Batch, makeBatch } from '../../../src/core/batch.ts';
import type { TaggedEntry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { pack } from '../../../src/core/msgpack.ts';
import { getPath } from '../../../src/core/record-path.ts';
import { encodeFailure } from '../../../src/outputs/format.ts';
import { isTenantId, lokiSchema, TENANT_RULE } from '../../../src/outputs/loki/config.ts';
import {
  decodeEntry,
  encodeRequest,
  type LokiEntry,
  lokiEntry,
  planRequests,
  shapeRecord,
} from '../../../src/outputs/loki/encode.ts';
import { type EncoderSettings, EntryEncoder, type Prepared } from '../../../src/outputs/loki/entries.ts';
import {
  CardinalityGuard,
  extractLabels,
  labelValue,
  parseLabelMap,
} from '../../../src/outputs/loki/labels.ts';
import type { Chunk, Rejection } from '../../../src/outputs/output.ts';
import { generatedEntries, Pairs, rawBatch } from './generated.ts';

/**
 * The bytes path (entries.ts: labels, tenant and metadata read from the msgpack, the line
 * transcoded) must send what the decoded path sends. The reference below is the output's
 * former per-record code, kept here as the oracle: decode, extractLabels, shapeRecord, the
 * guard, lokiEntry. Both sides must give the same pushes, byte for byte, in protobuf and JSON,
 * the same rejections, and entries that decode back to what the chunk holds.
 */

const K8S = JSON.parse(
  readFileSync(new URL('testdata/kubernetes-record.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

/** An output's encoder settings, from its configuration as users write it. */
function settings(options: Record<string, unknown>): EncoderSettings {
  const { label_map: map = [], ...rest } = options;
  const c = lokiSchema.parse(rest);
  return {
    line: {
      lineFormat: c.line_format,
      dropSingleKey: c.drop_single_key,
      removeKeys: c.remove_keys,
      structuredMetadata: c.structured_metadata,
    },
    rules: {
      labels: c.labels,
      autoKubernetes: c.auto_kubernetes_labels,
      map: map as ReturnType<typeof parseLabelMap>,
      keys: c.label_keys,
      includeTag: c.include_tag,
    },
    tenantKey: c.tenant_id_key,
    tenantId: c.tenant_id,
  };
}

const guardOf = (max: number) => {
  const guard = new CardinalityGuard(max, 3_600_000, () => 0);
  return { admit: (name: string, value: string) => guard.admit(name, value), demoted: () => {} };
};

/** The decoded path, as the output ran it for every record before. */
function reference(
  chunk: Chunk,
  s: EncoderSettings,
  max: number,
): { entries: LokiEntry[]; rejected: Rejection[] } {
  const guard = guardOf(max);
  const entries: LokiEntry[] = [];
  const rejected: Rejection[] = [];
  for (const entry of chunk.entries()) {
    const own = s.tenantKey === undefined ? undefined : labelValue(getPath(entry.record, s.tenantKey));
    const tenant = own ?? s.tenantId;
    if (tenant !== undefined && !isTenantId(tenant)) {
      rejected.push({
        entry,
        reason: `tenant id ${JSON.stringify(tenant)} is not valid for Loki: ${TENANT_RULE}`,
      });
      continue;
    }
    let extracted: ReturnType<typeof extractLabels>;
    let shaped: ReturnType<typeof shapeRecord>;
    try {
      extracted = extractLabels(entry, s.rules);
      shaped = shapeRecord(entry.record, extracted.consumed, s.line);
    } catch (err) {
      rejected.push({ entry, reason: encodeFailure(err) });
      continue;
    }
    const { labels, dynamic } = extracted;
    for (const name of dynamic) {
      const value = labels.get(name)!;
      if (guard.admit(name, value)) continue;
      labels.delete(name);
      shaped.metadata.push([name, value]);
    }
    if (labels.size === 0) {
      rejected.push({
        entry,
        reason: 'no labels: Loki needs at least one label per stream (set labels, e.g. job=fluent-bit)',
      });
      continue;
    }
    entries.push(lokiEntry(entry, tenant, labels, shaped.line, shaped.metadata));
  }
  return { entries, rejected };
}

function bodies(entries: readonly LokiEntry[], maxBytes: number): string[] {
  return planRequests(entries, maxBytes).flatMap((r) => [
    `${r.tenant} ${encodeRequest(r, 'protobuf').body.toString('base64')}`,
    `${r.tenant} ${encodeRequest(r, 'json').body.toString()}`,
  ]);
}

/** Encodes `batches` both ways and checks they agree; returns the bytes path's result. */
function bothWays(batches: Batch[], options: Record<string, unknown>, what: string, max = 0): Prepared {
  const s = settings(options);
  const chunk = makeChunk('c', batches, 0);
  const fast = new EntryEncoder(s, guardOf(max)).encode(chunk);
  const slow = reference(chunk, s, max);
  assert.deepEqual(
    fast.rejected.map((r) => r.reason),
    slow.rejected.map((r) => r.reason),
    `${what}: rejections`,
  );
  assert.deepEqual(
    fast.rejected.map((r) => r.entry),
    slow.rejected.map((r) => r.entry),
    `${what}: rejected entries`,
  );
  const want = bodies(slow.entries, 4096);
  const got = bodies(fast.entries, 4096);
  assert.equal(got.length, want.length, `${what}: pushes`);
  for (const [i, body] of got.entries()) assert.equal(body, want[i], `${what}: push ${i >> 1}`);
  assert.deepEqual(
    fast.entries.map(decodeEntry),
    slow.entries.map(decodeEntry),
    `${what}: entries decode back to the chunk's`,
  );
  return fast;
}

const CONFIGS: [string, Record<string, unknown>, number?][] = [
  ['default labels', {}],
  ['the bench: fixed job, include_tag', { labels: { job: 'bench' }, include_tag: true }],
  [
    'label_keys top-level and nested',
    { label_keys: ['stream', 'level', 'kubernetes.namespace_name', "$kubernetes['labels']['app']"] },
  ],
  ['labels with $paths, no fixed label', { labels: "$user, ns=$kubernetes['namespace_name'], $stream" }],
  [
    'auto_kubernetes_labels, kubernetes removed',
    { auto_kubernetes_labels: true, remove_keys: ['kubernetes'] },
  ],
  [
    'auto_kubernetes_labels with label_keys inside kubernetes',
    { auto_kubernetes_labels: true, label_keys: ['kubernetes.host'] },
  ],
  [
    'structured metadata and nested remove_keys',
    {
      label_keys: 'stream',
      structured_metadata: ['trace_id', 'kubernetes.pod_name', 'level'],
      remove_keys: ['kubernetes.pod_id', 'kubernetes.labels.app', 'time', 'kubernetes.annotations'],
    },
  ],
  ['tenant from a nested key', { tenant_id: 'platform', tenant_id_key: 'kubernetes.namespace_name' }],
  ['tenant key, no default', { tenant_id_key: 'tenant', label_keys: 'level' }],
  [
    'drop_single_key raw',
    {
      drop_single_key: 'raw',
      remove_keys: [
        'stream',
        'level',
        'user',
        'trace_id',
        'tenant',
        'kubernetes',
        'time',
        'items',
        'extra',
        'n',
        'msg',
      ],
    },
  ],
  [
    'drop_single_key true, one key left inside',
    {
      drop_single_key: true,
      label_keys: 'stream',
      remove_keys: [
        'level',
        'user',
        'trace_id',
        'tenant',
        'log',
        'time',
        'items',
        'extra',
        'n',
        'msg',
        'kubernetes.pod_id',
      ],
    },
  ],
  ['key_value lines', { line_format: 'key_value', label_keys: ['kubernetes.namespace_name'] }],
  ['the guard at 2 values', { label_keys: ['user', 'level'] }, 2],
  ['no fixed labels: records without any are refused', { labels: {}, label_keys: ['user'] }],
  ['a path through an array', { labels: { job: 'x', first: '$items[0]' }, remove_keys: ['$.items[1]'] }],
  [
    'label_map_path',
    { label_map: parseLabelMap({ kubernetes: { labels: { app: 'app' }, container_name: 'container' } }) },
  ],
];

describe('loki bytes path: the same pushes as the decoded path', () => {
  for (const [name, options, max] of CONFIGS) {
    it(`${name}: generated records, odd shapes included`, () => {
      for (const seed of [1, 2, 3]) {
        // Seed 1 without the odd shapes: only key_value and paths into arrays need decoding then.
        const entries = generatedEntries(seed, 300, seed === 1 ? 0 : 0.05);
        const batches = [
          rawBatch('kube.a', entries.slice(0, 100)),
          rawBatch('kube.b', entries.slice(100, 200)),
          rawBatch('kube.a', entries.slice(200)),
        ];
        const fast = bothWays(batches, options, `${name}, seed ${seed}`, max);
        const decodes = options.line_format === 'key_value' || JSON.stringify(options).includes('items[');
        if (seed === 1 && !decodes) assert.equal(fast.decoded, 0, `${name}: records decoded`);
      }
    });
  }

  it('the bench records and a kubernetes record take the bytes path only', () => {
    const base = 1_800_000_000;
    const bench = makeBatch(
      'bench.t0',
      Array.from({ length: 500 }, (_, i) => ({ time: new EventTime(base, i), record: recordAt(i) })),
    );
    const k8s = makeBatch(
      'kube.var.log',
      Array.from({ length: 50 }, (_, i) => ({
        time: new EventTime(base + (i % 7), 0),
        record: { ...K8S, log: `line ${i}` },
      })),
    );
    for (const [name, options] of CONFIGS.slice(0, 11)) {
      const fast = bothWays([bench, k8s], options, name);
      assert.equal(fast.decoded, 0, `${name}: no record decoded`);
    }
  });

  it('takes the decoded path for the records whose bytes could mislead, and only those', () => {
    const time = new EventTime(1_800_000_000, 0);
    const odd = [
      // A number as a key: msgpackr makes it "1", which a path can name.
      new Pairs([
        [1, 'one'],
        ['stream', 'stdout'],
      ]),
      // A repeated key with a deeper path inside: only the last value counts.
      new Pairs([
        ['kubernetes', new Pairs([['namespace_name', 'first']])],
        ['kubernetes', new Pairs([['pod_name', 'second']])],
      ]),
      // An array where the path goes.
      new Pairs([['kubernetes', ['namespace_name']]]),
    ];
    const plain = new Pairs([
      ['stream', 'stdout'],
      ['kubernetes', new Pairs([['namespace_name', 'shop']])],
    ]);
    const batch = rawBatch(
      't',
      [...odd, plain].map((record) => ({ time, record })),
    );
    // Labels leave the line (whose writer checks keys too); a tenant does not.
    for (const options of [
      { label_keys: ['stream', 'kubernetes.namespace_name', '1'] },
      { tenant_id: 'x', tenant_id_key: 'kubernetes.namespace_name' },
    ]) {
      const fast = bothWays([batch], options, JSON.stringify(options));
      assert.equal(fast.decoded, odd.length);
    }
  });

  it('a record too deep for JSON is refused alone, through the transcoder, with the same reason on both paths', () => {
    let deep: unknown = 'bottom';
    for (let i = 0; i < 5000; i++) deep = [deep];
    const time = new EventTime(1_800_000_000, 0);
    const batch = rawBatch('t', [
      { time, record: { ok: 1 } },
      { time, record: { deep } },
    ]);
    for (const options of [{}, { label_keys: 'ok', remove_keys: ['a.b'] }, { line_format: 'key_value' }]) {
      const fast = new EntryEncoder(settings(options), guardOf(0)).encode(makeChunk('c', [batch], 0));
      assert.deepEqual(
        fast.rejected.map((r) => r.reason),
        ['cannot encode the record: EncodeError: nested too deep to write as JSON'],
      );
      assert.equal(fast.entries.length, 1);
    }
  });

  it('labels from nested paths, and what stays of the nested map in the line', () => {
    const time = new EventTime(1_800_000_000, 7);
    const chunk = makeChunk('c', [makeBatch('kube', [{ time, record: K8S }])], 0);
    const s = settings({
      labels: { job: 'k8s', app: "$kubernetes['labels']['app']" },
      label_keys: ['kubernetes.namespace_name'],
      remove_keys: ['kubernetes.annotations', 'kubernetes.labels'],
    });
    const { entries, decoded } = new EntryEncoder(s, guardOf(0)).encode(chunk);
    assert.equal(decoded, 0);
    const [e] = entries;
    assert.equal(e!.stream, '{app="checkout", job="k8s", namespace_name="shop"}');
    const line = JSON.parse(e!.lines.buf.subarray(e!.lineStart, e!.lineEnd).toString()) as Record<
      string,
      unknown
    >;
    const kubernetes = K8S.kubernetes as Record<string, unknown>;
    const { namespace_name: _ns, annotations: _a, labels: _l, ...rest } = kubernetes;
    assert.deepEqual(line, { ...K8S, kubernetes: rest });
    assert.deepEqual(Object.keys(line.kubernetes as object), Object.keys(rest), 'in the record’s order');
  });

  it('a retried or rejected entry is decoded from its bytes: metadata, float times and binary kept', () => {
    const entries: TaggedEntry[] = [
      { tag: 'fb', time: new EventTime(1_800_000_000, 123), record: { log: 'a', bin: Buffer.from([0xff]) } },
      {
        tag: 'fb',
        time: new EventTime(1_800_000_001, 5),
        record: { log: 'b', n: 2n ** 64n - 1n },
        metadata: { otel: { span: 's' } },
      },
    ];
    // Fluentd's float seconds: [1800000002.25, {"log": "c"}].
    const seconds = Buffer.alloc(9, 0xcb);
    seconds.writeDoubleBE(1_800_000_002.25, 1);
    const float = Buffer.concat([Buffer.from([0x92]), seconds, pack({ log: 'c' })]);
    const batches = [makeBatch('fb', entries), { tag: 'old', payload: float, count: 1, bytes: float.length }];
    const chunk = makeChunk('c', batches, 0);
    const { entries: out } = new EntryEncoder(settings({}), guardOf(0)).encode(chunk);
    assert.deepEqual(out.map(decodeEntry), chunk.entries());
    assert.deepEqual(out.map(decodeEntry).slice(0, 2), entries);
    assert.deepEqual([out[2]!.sec, out[2]!.nsec], [1_800_000_002, 250_000_000]);
  });
});
