import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { configErrors } from '../../support/config.ts';
import { AWS_KEY_ID, AWS_SECRET, estuaryCheck } from '../../support/estuary.ts';

const registry = builtinRegistry();

function optionsOf(yaml: string): Record<string, unknown> {
  return loadConfig(yaml, 'estuary.yaml', registry, {}).outputs[0]!.options as Record<string, unknown>;
}

/** Each error as `file:line | message`, the message cut before any parenthesis. */
function errorsOf(yaml: string): string[] {
  return configErrors(() => loadConfig(yaml, 'estuary.yaml', registry, {}))
    .map((e) => e.replace(/: .*?: /, ' | ').replace(/ \(.*$/, ''))
    .sort();
}

describe('cloudwatch_logs output configuration', () => {
  it("defaults: JSON, streams created, groups not (Fluent Bit's defaults), 1 MiB chunks of at most 10,000 records flushed each second", () => {
    const c = loadConfig(
      'outputs:\n  - { type: cloudwatch_logs, log_group_name: app, log_stream_prefix: "from-" }\n',
      'estuary.yaml',
      registry,
      {},
    );
    const out = c.outputs[0]!;
    const o = out.options as Record<string, unknown>;
    assert.deepEqual(
      [o.log_format, o.auto_create_group, o.auto_create_stream, o.oversize],
      ['json', false, true, 'reject'],
    );
    assert.deepEqual(
      [out.buffer.chunkLimitSize, out.buffer.chunkLimitRecords, out.buffer.flushIntervalMs],
      [1024 * 1024, 10_000, 1000],
    );
  });

  it("log_retention_days is checked at startup against CloudWatch's allowed values", () => {
    assert.deepEqual(
      errorsOf(
        'outputs:\n  - { type: cloudwatch_logs, log_group_name: app, log_stream_name: s, auto_create_group: true, log_retention_days: 10 }\n',
      ),
      [
        "estuary.yaml:2 | expected one of CloudWatch's retention periods: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653",
      ],
    );
    for (const days of [0, 1, 400, 3653])
      assert.equal(
        optionsOf(
          `outputs:\n  - { type: cloudwatch_logs, log_group_name: app, log_stream_name: s, auto_create_group: true, log_retention_days: ${days} }\n`,
        ).log_retention_days,
        days,
      );
  });

  it('mistakes are named by key, all at once', () => {
    assert.deepEqual(
      errorsOf(`outputs:
  - type: cloudwatch_logs
    log_group_name: "my group"
    log_stream_name: "a:b"
    log_group_template: "logs-$UUID"
    log_stream_template: "$%bad"
    log_group_class: COLD
    log_format: xml
`),
      [
        'estuary.yaml:3 | expected a log group name: 1-512 of a-z A-Z 0-9 . - _ / #, got "my group"',
        'estuary.yaml:4 | expected a log stream name: 1-512 characters, no : or *, got "a:b"',
        'estuary.yaml:5 | $UUID and ${chunk_id} change with every chunk: a group or stream per chunk is not what CloudWatch is for',
        'estuary.yaml:6 | unknown placeholder at "$%bad"',
        'estuary.yaml:7 | expected one of "STANDARD", "INFREQUENT_ACCESS", got "COLD"',
        'estuary.yaml:8 | expected one of "json", "json/emf", got "xml"',
      ],
    );
  });

  it('a stream is named one way: log_stream_name or log_stream_prefix', () => {
    const both = errorsOf(
      'outputs:\n  - { type: cloudwatch_logs, log_group_name: a, log_stream_name: s, log_stream_prefix: p }\n',
    );
    const none = errorsOf('outputs:\n  - { type: cloudwatch_logs, log_group_name: a }\n');
    for (const errors of [both, none])
      assert.deepEqual(errors, ['estuary.yaml:2 | set one of log_stream_name and log_stream_prefix']);
  });

  it('group settings without auto_create_group, and EMF options without json/emf, are refused saying why', () => {
    assert.deepEqual(
      errorsOf(`outputs:
  - type: cloudwatch_logs
    log_group_name: app
    log_stream_name: s
    log_retention_days: 7
    log_group_tags: { team: web }
    metric_namespace: app
    metrics: [count]
`),
      [
        'estuary.yaml:5 | log_retention_days is set only on a group Estuary creates: add auto_create_group: true',
        'estuary.yaml:6 | log_group_tags is set only on a group Estuary creates: add auto_create_group: true',
        'estuary.yaml:7 | metric_namespace goes with log_format: json/emf',
        'estuary.yaml:8 | metrics goes with log_format: json/emf',
      ],
    );
    assert.deepEqual(
      errorsOf(`outputs:
  - type: cloudwatch_logs
    log_group_name: app
    log_stream_name: s
    log_format: json/emf
    log_key: log
    auto_create_group: true
    log_group_class: INFREQUENT_ACCESS
    metrics: [{ name: latency, unit: Milliseconds }]
`),
      [
        'estuary.yaml:2 | metrics go in a namespace: set metric_namespace',
        'estuary.yaml:6 | log_format json/emf sends the record as a JSON object: log_key sends one field of it',
        'estuary.yaml:8 | Infrequent Access log groups extract no metrics from EMF: use STANDARD',
      ],
    );
    assert.deepEqual(
      errorsOf(
        'outputs:\n  - { type: cloudwatch_logs, log_group_name: a, log_stream_name: s, log_format: json/emf, metric_namespace: n, metrics: [{ name: latency, unit: Millis }] }\n',
      ),
      [
        'estuary.yaml:2 | expected one of "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None", got "Millis"',
      ],
    );
  });

  it("metric_dimensions in Fluent Bit's string form or as lists; metrics by name or with a unit", () => {
    const base =
      'type: cloudwatch_logs, log_group_name: a, log_stream_name: s, log_format: json/emf, metric_namespace: n';
    const fluentBit = optionsOf(
      `outputs:\n  - { ${base}, metric_dimensions: "level, service;level", metrics: [count, { name: ms, unit: Milliseconds }] }\n`,
    );
    assert.deepEqual(fluentBit.metric_dimensions, [['level', 'service'], ['level']]);
    assert.deepEqual(fluentBit.metrics, [{ name: 'count' }, { name: 'ms', unit: 'Milliseconds' }]);
    const lists = optionsOf(
      `outputs:\n  - { ${base}, metric_dimensions: [[level, service], level], metrics: [count] }\n`,
    );
    assert.deepEqual(lists.metric_dimensions, [['level', 'service'], ['level']]);
    const tooMany = Array.from({ length: 31 }, (_, i) => `d${i}`).join(',');
    assert.match(
      errorsOf(`outputs:\n  - { ${base}, metric_dimensions: "${tooMany}", metrics: [count] }\n`)[0]!,
      /EMF takes at most 30 dimension keys in a set/,
    );
  });

  it('estuary check prints the resolved output, with no credential in it', () => {
    const run = estuaryCheck(
      'outputs:\n  - { type: cloudwatch_logs, log_group_name: app, log_stream_prefix: "k-", role_arn: "arn:aws:iam::123456789012:role/logs" }\n',
    );
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /cloudwatch_logs/);
    assert.match(run.stdout, /log_stream_prefix/);
    assert.ok(!run.stdout.includes(AWS_SECRET) && !run.stdout.includes(AWS_KEY_ID), 'no credential printed');
  });
});
