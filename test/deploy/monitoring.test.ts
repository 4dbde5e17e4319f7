import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { startEstuary } from '../support/estuary.ts';
import { freePort } from '../support/wait.ts';
import { aggregationsOf, metricNames } from './promql.ts';
import { PROMTOOL_HINT, ROOT, readYaml, runOk } from './tools.ts';

/** The alert rules (plain file and PrometheusRule) and the Grafana dashboard in k8s/monitoring/. */
const RULES = 'k8s/monitoring/estuary.rules.yml';
interface Rule {
  alert: string;
  expr: string;
}
const rules = readYaml<{ groups: { name: string; rules: Rule[] }[] }>(RULES);
const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}
const dashboard = JSON.parse(readFileSync(`${ROOT}k8s/monitoring/estuary-dashboard.json`, 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; query: string | { query: string } }[] };
};
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dashboardExprs = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  // label_values(metric, label): the variable's values come from that metric.
  ...dashboard.templating.list.flatMap((v) =>
    typeof v.query === 'object' ? [v.query.query.replace(/^label_values\((\w+), \w+\)$/, '$1')] : [],
  ),
];
/** Grafana's variables as a query would see them, so promtool can parse the expressions. */
const withoutVariables = (expr: string) =>
  expr.replaceAll('$__rate_interval', '5m').replace(/\$[a-z_]+/g, '.*');

/**
 * Read from Redis with the redis buffer, so every replica reports the same value: rules and
 * panels must take `max` (or `min`) across replicas, never `sum` (README → Metrics).
 * estuary_output_halted is 0/1 per replica: summing it would count one halt twice.
 */
const SAME_ON_EVERY_REPLICA = [
  'fluentd_output_status_buffer_queue_length',
  'fluentd_output_status_buffer_total_bytes',
  'fluentd_output_status_buffer_stage_length',
  'fluentd_output_status_buffer_stage_byte_size',
  'fluentd_output_status_queue_byte_size',
  'fluentd_output_status_buffer_available_space_ratio',
  'fluentd_output_status_retry_wait',
  'estuary_dead_letter_chunks',
  'estuary_dead_letter_records',
  'estuary_output_halted',
];
/** Not Estuary's: Prometheus's own, kube-state-metrics', redis_exporter's. */
const EXTERNAL = /^(up|kube_\w+|redis_\w+)$/;

describe('alert rules', () => {
  it('promtool check rules accepts the plain rules file', () => {
    assert.match(runOk('promtool', ['check', 'rules', RULES], PROMTOOL_HINT), /SUCCESS: 8 rules found/);
  });

  it('promtool test rules: each alert fires on its synthetic series and stays quiet on healthy ones', () => {
    const output = runOk('promtool', ['test', 'rules', 'test/deploy/estuary.rules.test.yml'], PROMTOOL_HINT);
    assert.match(output, /SUCCESS/);
    const tested = readFileSync(`${ROOT}test/deploy/estuary.rules.test.yml`, 'utf8');
    for (const rule of rules.groups.flatMap((g) => g.rules))
      assert.match(tested, new RegExp(`alertname: ${rule.alert}\\n`), `${rule.alert} has a unit test`);
  });

  it('the PrometheusRule holds the same groups as the plain file', () => {
    const resource = readYaml<{ kind: string; spec: unknown }>('k8s/monitoring/prometheusrule.yaml');
    assert.equal(resource.kind, 'PrometheusRule');
    assert.deepEqual(resource.spec, rules);
  });

  it('alert on what the issue asks for', () => {
    assert.deepEqual(
      rules.groups.flatMap((g) => g.rules.map((r) => r.alert)),
      [
        'EstuaryOutputHalted',
        'EstuaryBufferNearlyFull',
        'EstuaryRetriesClimbing',
        'EstuaryDeadLetterGrowing',
        'EstuaryRecordsDropped',
        'EstuaryNoRecordsReceived',
        'EstuaryReplicaDown',
        'EstuaryReplicaNotReady',
      ],
    );
  });
});

describe('Grafana dashboard', () => {
  it('every query is valid PromQL (promtool parses them as recording rules)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-dashboard-'));
    const recording = dashboardExprs.map((expr, i) => ({
      record: `dashboard:query_${i}`,
      expr: withoutVariables(expr),
    }));
    writeFileSync(join(dir, 'queries.yml'), stringify({ groups: [{ name: 'dashboard', rules: recording }] }));
    const output = runOk('promtool', ['check', 'rules', join(dir, 'queries.yml')], PROMTOOL_HINT);
    assert.match(output, new RegExp(`SUCCESS: ${recording.length} rules found`));
  });

  it('has the panels the issue lists', () => {
    const used = new Set(dashboardExprs.flatMap(metricNames));
    for (const metric of [
      'fluentd_input_status_num_records_total', // ingest per input
      'estuary_output_records_delivered_total', // delivery per output
      'fluentd_output_status_buffer_total_bytes',
      'fluentd_output_status_buffer_queue_length',
      'fluentd_output_status_retry_count',
      'fluentd_output_status_retry_wait',
      'estuary_dead_letter_records',
      'estuary_output_halted',
      'estuary_ack_latency_seconds_bucket', // percentiles
      'estuary_flush_duration_seconds_bucket',
      'process_cpu_seconds_total', // per replica
      'process_resident_memory_bytes',
      'redis_memory_used_bytes',
    ])
      assert.ok(used.has(metric), `a panel shows ${metric}`);
    assert.ok(dashboardExprs.some((e) => e.startsWith('histogram_quantile(0.99, ')));
  });

  it('panel ids are unique (Grafana keys panels by id)', () => {
    const ids = panels.map((p) => (p as Panel & { id: number }).id);
    assert.equal(new Set(ids).size, ids.length);
  });
});

describe('rules and dashboard against a running Estuary', () => {
  it('take max (or min), never sum, of the gauges every replica reads from Redis', () => {
    for (const expr of [...ruleExprs, ...dashboardExprs])
      for (const metric of SAME_ON_EVERY_REPLICA)
        for (const aggregation of aggregationsOf(expr, metric))
          assert.ok(
            aggregation === 'max' || aggregation === 'min',
            `${metric} under ${aggregation} in: ${expr}`,
          );
  });

  let estuary: Awaited<ReturnType<typeof startEstuary>>;
  let exposed: Set<string>;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-metrics-'));
    const [forwardPort, httpPort] = [await freePort(), await freePort()];
    estuary = await startEstuary(`
service: { buffer: { flush_interval: 100ms } }
inputs:
  - { type: forward, id: forward, listen: 127.0.0.1, port: ${forwardPort} }
  - { type: http, id: http, listen: 127.0.0.1, port: ${httpPort} }
outputs:
  - { type: file, id: archive, match: "app.**", path: ${dir}/out.ndjson }
  - { type: "null", id: discard, match: "debug.**" }
  - { type: loki, id: loki, match: "loki.**", url: "http://127.0.0.1:9" }
`);
    const res = await fetch(`http://127.0.0.1:${httpPort}/app.web`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"msg":"hi"}',
    });
    assert.equal(res.status, 200);
    // Every metric /metrics declares (a labelled counter nobody has counted yet has its
    // # TYPE line and no sample), with a histogram's series names.
    exposed = new Set();
    for (const [, name, type] of (await estuary.metrics()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exposed.add(name!);
      if (type === 'histogram')
        for (const suffix of ['_bucket', '_sum', '_count']) exposed.add(`${name}${suffix}`);
    }
  });
  after(() => estuary?.stop());

  it('every metric the rules and the dashboard read is on /metrics', () => {
    const used = new Set([...ruleExprs, ...dashboardExprs].flatMap(metricNames));
    const missing = [...used].filter((name) => !EXTERNAL.test(name) && !exposed.has(name));
    assert.deepEqual(missing, []);
    assert.ok(used.size > 20, `read ${used.size} metric names`);
  });

  it('the per-output gauges carry plugin_id for each output', async () => {
    const text = await estuary.metrics();
    for (const id of ['archive', 'discard', 'loki'])
      for (const gauge of [
        'fluentd_output_status_buffer_total_bytes',
        'estuary_output_halted',
        'estuary_dead_letter_records',
      ])
        assert.match(text, new RegExp(`^${gauge}\\{plugin_id="${id}"`, 'm'));
  });
});
