import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { TaggedEntry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import {
  CardinalityGuard,
  extractLabels,
  type LabelRules,
  labelKey,
  labelValue,
  parseLabelMap,
  parseLabels,
  sanitizeLabelName,
} from '../../../src/outputs/loki/labels.ts';

/** A container log record as Fluent Bit's kubernetes filter (Merge_Log off) leaves it. */
const K8S_RECORD = JSON.parse(
  readFileSync(new URL('testdata/kubernetes-record.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

const entry = (record: Record<string, unknown>, tag = 'kube.var.log.containers'): TaggedEntry => ({
  tag,
  time: new EventTime(1_800_000_000, 5),
  record,
});

const rules = (over: Partial<LabelRules> = {}): LabelRules => ({
  labels: [],
  autoKubernetes: false,
  map: [],
  keys: [],
  includeTag: false,
  ...over,
});

const sorted = (m: Map<string, string>) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : 1)));

describe('loki labels: the option’s three spellings', () => {
  it('a map: fixed values, and $record paths', () => {
    assert.deepEqual(parseLabels({ job: 'fluent-bit', version: 2, stream: "$sub['stream']" }), [
      { name: 'job', value: 'fluent-bit' },
      { name: 'version', value: '2' },
      { name: 'stream', path: ['sub', 'stream'] },
    ]);
  });

  it('the Grafana plugin’s {name="value", …}, escapes included', () => {
    assert.deepEqual(parseLabels('{test="fluent-bit-go", tag="my_cpu"}'), [
      { name: 'test', value: 'fluent-bit-go' },
      { name: 'tag', value: 'my_cpu' },
    ]);
    assert.deepEqual(parseLabels('{ a = "x \\"y\\", z" ,b="\\n"}'), [
      { name: 'a', value: 'x "y", z' },
      { name: 'b', value: '\n' },
    ]);
    assert.deepEqual(parseLabels('{}'), []);
    assert.throws(() => parseLabels('{job=fluent-bit}'), /expected name="value" at character 2/);
    assert.throws(() => parseLabels('{job="x"'), /expected \{name="value"/);
  });

  it("Fluent Bit’s job=fluent-bit, $sub['stream'], mystream=$sub['stream']", () => {
    assert.deepEqual(
      parseLabels(
        "job=fluentbit, $sub['stream'], mystream=$sub['stream'], $kubernetes['labels']['app.kubernetes.io/name']",
      ),
      [
        { name: 'job', value: 'fluentbit' },
        { name: 'stream', path: ['sub', 'stream'] },
        { name: 'mystream', path: ['sub', 'stream'] },
        { name: 'app_kubernetes_io_name', path: ['kubernetes', 'labels', 'app.kubernetes.io/name'] },
      ],
    );
    assert.throws(() => parseLabels('job'), /expected name=value or \$record\['key'\], got "job"/);
  });

  it('names are sanitized to [a-zA-Z_][a-zA-Z0-9_]*; values are kept', () => {
    assert.equal(sanitizeLabelName('app.kubernetes.io/name'), 'app_kubernetes_io_name');
    assert.equal(sanitizeLabelName('pod-template-hash'), 'pod_template_hash');
    assert.equal(sanitizeLabelName('1st'), '_1st');
    assert.equal(sanitizeLabelName('héllo wörld'), 'h_llo_w_rld');
    assert.equal(sanitizeLabelName(''), undefined);
    assert.deepEqual(parseLabels({ 'my-app': 'Ünïcode value, "quoted"' }), [
      { name: 'my_app', value: 'Ünïcode value, "quoted"' },
    ]);
  });

  it('values: strings, numbers, booleans and binary as text; maps, arrays, null and "" are none', () => {
    assert.equal(labelValue('x'), 'x');
    assert.equal(labelValue(12.5), '12.5');
    assert.equal(labelValue(10n ** 20n), '100000000000000000000');
    assert.equal(labelValue(false), 'false');
    assert.equal(labelValue(Buffer.from('bin')), 'bin');
    for (const none of [{}, [], null, undefined, '', Number.NaN]) assert.equal(labelValue(none), undefined);
  });

  it('label_keys: dotted keys go into maps, $[...] keeps a dotted key whole', () => {
    assert.deepEqual(labelKey('kubernetes.namespace_name'), {
      name: 'namespace_name',
      path: ['kubernetes', 'namespace_name'],
    });
    assert.deepEqual(labelKey("$kubernetes['namespace_name']"), {
      name: 'namespace_name',
      path: ['kubernetes', 'namespace_name'],
    });
    assert.deepEqual(labelKey("$['cpu0.p_cpu']"), { name: 'cpu0_p_cpu', path: ['cpu0.p_cpu'] });
    assert.throws(() => labelKey('a..b'), /invalid record key/);
  });

  it('label_map_path: string leaves name labels, objects go deeper', () => {
    assert.deepEqual(
      parseLabelMap({
        kubernetes: { namespace_name: 'namespace', labels: { 'app.kubernetes.io/name': 'app' } },
        stream: 'stream',
      }),
      [
        { name: 'namespace', path: ['kubernetes', 'namespace_name'] },
        { name: 'app', path: ['kubernetes', 'labels', 'app.kubernetes.io/name'] },
        { name: 'stream', path: ['stream'] },
      ],
    );
    assert.throws(() => parseLabelMap({ a: 1 }), /expected a label name \(string\) or an object at a/);
    assert.throws(() => parseLabelMap(['a']), /expected a JSON object/);
  });
});

describe('loki labels: from every source, for one record', () => {
  it('auto_kubernetes_labels on a Fluent Bit kubernetes-filter record: namespace, pod, container, host, pod labels', () => {
    const { labels, consumed } = extractLabels(entry(K8S_RECORD), rules({ autoKubernetes: true }));
    assert.deepEqual(sorted(labels), {
      app: 'checkout',
      app_kubernetes_io_name: 'checkout',
      app_kubernetes_io_part_of: 'shop',
      container: 'checkout',
      host: 'ip-10-0-1-23.eu-west-1.compute.internal',
      namespace: 'shop',
      pod: 'checkout-7d9f8c6b5d-x2k4q',
      pod_template_hash: '7d9f8c6b5d',
    });
    assert.deepEqual(consumed, [], 'the kubernetes map stays in the line (remove_keys takes it out)');
    const none = extractLabels(entry({ log: 'no kubernetes map' }), rules({ autoKubernetes: true }));
    assert.equal(none.labels.size, 0);
  });

  it('every source at once; a later source wins a name; record values used as labels leave the line', () => {
    const r = rules({
      labels: parseLabels('job=fluent-bit, stream=$stream, namespace=fixed'),
      autoKubernetes: true,
      map: parseLabelMap({ kubernetes: { labels: { app: 'application' } } }),
      keys: [labelKey('kubernetes.container_name'), labelKey('missing.key')],
      includeTag: true,
    });
    const { labels, dynamic, consumed } = extractLabels(entry(K8S_RECORD), r);
    assert.equal(labels.get('job'), 'fluent-bit');
    assert.equal(labels.get('stream'), 'stdout');
    assert.equal(labels.get('namespace'), 'shop', 'auto_kubernetes_labels comes after labels');
    assert.equal(labels.get('application'), 'checkout');
    assert.equal(labels.get('container_name'), 'checkout');
    assert.equal(labels.get('tag'), 'kube.var.log.containers');
    assert.equal(labels.has('name'), false, 'a missing key makes no label');
    assert.deepEqual(
      [...dynamic].sort(),
      [
        'app',
        'app_kubernetes_io_name',
        'app_kubernetes_io_part_of',
        'application',
        'container',
        'container_name',
        'host',
        'namespace',
        'pod',
        'pod_template_hash',
        'stream',
        'tag',
      ],
      'only job is fixed',
    );
    assert.deepEqual(consumed, [
      ['stream'],
      ['kubernetes', 'labels', 'app'],
      ['kubernetes', 'container_name'],
    ]);
  });
});

describe('loki labels: the cardinality guard', () => {
  it('admits max values per name; a known value stays; past the limit new values are refused', () => {
    const guard = new CardinalityGuard(3);
    for (const v of ['a', 'b', 'c']) assert.equal(guard.admit('user', v), true);
    assert.equal(guard.admit('user', 'd'), false);
    assert.equal(guard.admit('user', 'a'), true, 'a known value is still a label');
    assert.equal(guard.admit('other', 'd'), true, 'counted per label name');
    assert.equal(guard.size('user'), 3);
  });

  it('counts over a sliding hour: a value unseen for an hour frees its place', () => {
    let now = 0;
    const guard = new CardinalityGuard(2, 3_600_000, () => now);
    assert.equal(guard.admit('user', 'a'), true);
    now = 1_800_000;
    assert.equal(guard.admit('user', 'b'), true);
    now = 3_000_000;
    assert.equal(guard.admit('user', 'a'), true, 'seen again: its hour starts over');
    now = 5_000_000; // b last seen 53 min ago, a 33 min ago
    assert.equal(guard.admit('user', 'c'), false);
    now = 5_400_001; // b unseen for an hour
    assert.equal(guard.admit('user', 'c'), true);
    assert.equal(guard.admit('user', 'b'), false, 'b has to queue like any new value');
  });

  it('max 0 turns it off', () => {
    const guard = new CardinalityGuard(0);
    for (let i = 0; i < 5000; i++) assert.equal(guard.admit('id', String(i)), true);
  });
});
