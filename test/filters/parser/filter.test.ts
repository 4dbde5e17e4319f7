import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { EventTime } from '../../../src/core/event-time.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { scriptedInstances } from '../../support/outputs.ts';
import { freePort, waitFor } from '../../support/wait.ts';
import { BEFORE, build, entry, errorsOf, iso, one } from './helpers.ts';

const LINE = '{"time":"2024-01-15T10:30:00.25Z","level":"info","msg":"hi","n":1}';

async function count(
  metrics: Metrics,
  name: 'filterParseErrors' | 'recordsDropped',
  labels: Record<string, string>,
) {
  const values = (await metrics[name].get()).values;
  const fits = (have: Record<string, unknown>) =>
    Object.entries(labels).every(([k, want]) => have[k] === want);
  return values.find((v) => fits(v.labels))?.value ?? 0;
}

describe('parser filter options', () => {
  it('by default the record is the parsed fields, its time the line time', () => {
    const f = build('    key_name: log\n    format: json\n');
    const out = one(f.apply(entry({ log: LINE, stream: 'stdout' }), 't'));
    assert.deepEqual(out.record, { level: 'info', msg: 'hi', n: 1 });
    assert.equal(iso(out.time), '2024-01-15T10:30:00.250000000Z');
  });

  it('reserve_data keeps the other fields (a parsed one wins a clash) and drops key_name unless kept', () => {
    const record = { log: LINE, stream: 'stdout', level: 'from-agent' };
    const dropKey = one(
      build('    key_name: log\n    format: json\n    reserve_data: true\n').apply(entry(record), 't'),
    );
    assert.deepEqual(dropKey.record, { stream: 'stdout', level: 'info', msg: 'hi', n: 1 });
    assert.deepEqual(
      record,
      { log: LINE, stream: 'stdout', level: 'from-agent' },
      'the input record is not changed',
    );
    for (const keep of ['preserve_key: true', 'remove_key_name_field: false']) {
      const kept = one(
        build(`    key_name: log\n    format: json\n    reserve_data: true\n    ${keep}\n`).apply(
          entry(record),
          't',
        ),
      );
      assert.equal(kept.record.log, LINE, keep);
    }
    const removed = one(
      build(
        '    key_name: log\n    format: json\n    reserve_data: true\n    remove_key_name_field: true\n',
      ).apply(entry(record), 't'),
    );
    assert.equal(removed.record.log, undefined);
  });

  it('inject_key_prefix and hash_value_field place the parsed fields', () => {
    const prefixed = one(
      build(
        '    key_name: log\n    format: json\n    inject_key_prefix: app_\n    reserve_data: true\n',
      ).apply(entry({ log: LINE, level: 'x' }), 't'),
    );
    assert.deepEqual(prefixed.record, { level: 'x', app_level: 'info', app_msg: 'hi', app_n: 1 });
    const nested = one(
      build(
        '    key_name: log\n    format: json\n    hash_value_field: parsed\n    reserve_data: true\n',
      ).apply(entry({ log: LINE, level: 'x' }), 't'),
    );
    assert.deepEqual(nested.record, { level: 'x', parsed: { level: 'info', msg: 'hi', n: 1 } });
  });

  it('key_name is a record path; binary text is read; metadata rides along', () => {
    const f = build('    key_name: $.kubernetes.log\n    format: json\n    reserve_data: true\n');
    const e = { ...entry({ kubernetes: { log: LINE, pod: 'p' } }), metadata: { m: 1 } };
    const out = one(f.apply(e, 't'));
    assert.deepEqual(out.record, { kubernetes: { pod: 'p' }, level: 'info', msg: 'hi', n: 1 });
    assert.deepEqual(out.metadata, { m: 1 });
    const bin = one(
      build('    key_name: log\n    format: json\n').apply(entry({ log: Buffer.from(LINE) }), 't'),
    );
    assert.equal(bin.record.msg, 'hi');
  });

  it('a record that does not parse passes unchanged and is counted; a missing key is not an error', async () => {
    const metrics = new Metrics();
    const f = build('    id: p1\n    key_name: log\n    format: json\n', metrics);
    for (const record of [{ log: 'not json' }, { log: 42 }, { log: { a: 1 } }]) {
      const e = entry(record);
      assert.equal(f.apply(e, 't'), e);
    }
    const missing = entry({ other: 'x' });
    assert.equal(f.apply(missing, 't'), missing);
    assert.equal(f.apply(entry({ log: null }), 't') !== null, true);
    assert.equal(await count(metrics, 'filterParseErrors', { plugin_id: 'p1', type: 'parser' }), 3);
    assert.equal(await count(metrics, 'recordsDropped', { plugin_id: 'p1' }), 0);
  });

  it('emit_invalid_record_to_error hands what does not parse to the dead-letter queue, with the reason', async () => {
    const metrics = new Metrics();
    const f = build(
      '    id: p2\n    key_name: log\n    format: json\n    emit_invalid_record_to_error: true\n',
      metrics,
    );
    const bad = entry({ log: 'nope' });
    assert.deepEqual(f.apply(bad, 't'), [{ entry: bad, reject: 'p2: log is not json' }]);
    assert.equal(one(f.apply(entry({ log: LINE }), 't')).record.msg, 'hi');
    assert.equal(await count(metrics, 'recordsDropped', { plugin_id: 'p2' }), 0, 'nothing dropped');
    assert.equal(await count(metrics, 'filterParseErrors', { plugin_id: 'p2' }), 1);
  });

  it('a dead-lettered record is logged as a warning with its reason, once a minute at most', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const f = build(
      '    id: p4\n    key_name: log\n    format: json\n    emit_invalid_record_to_error: true\n',
      new Metrics(),
      logger,
    );
    for (let i = 0; i < 3; i++) assert.ok(Array.isArray(f.apply(entry({ log: 'nope' }), 't')));
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0]!.level, 40);
    assert.equal(lines[0]!.filter, 'p4');
    assert.equal(lines[0]!.reason, 'log is not json');
  });

  it('a value over max_bytes is not parsed: a parse error', async () => {
    const metrics = new Metrics();
    const f = build('    id: p3\n    key_name: log\n    format: json\n    max_bytes: 64\n', metrics);
    const fits = `{"a":"${'é'.repeat(27)}"}`; // 62 bytes
    assert.equal(one(f.apply(entry({ log: fits }), 't')).record.a, 'é'.repeat(27));
    const over = entry({ log: `{"a":"${'é'.repeat(29)}"}` }); // 37 characters, 66 bytes
    assert.equal(f.apply(over, 't'), over);
    assert.equal(await count(metrics, 'filterParseErrors', { plugin_id: 'p3' }), 1);
  });

  it("parser is Fluent Bit's name for format (DESIGN.md's example writes it so)", () => {
    const f = build('    key_name: log\n    parser: nginx\n');
    const out = one(
      f.apply(entry({ log: '::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 5' }), 't'),
    );
    assert.equal(out.record.code, '200');
  });

  it('a line without a time keeps the entry time; reserve_time keeps it whatever the line says', () => {
    const out = one(build('    key_name: log\n    format: logfmt\n').apply(entry({ log: 'a=1' }), 't'));
    assert.equal(out.time, BEFORE);
    assert.ok(out.time instanceof EventTime);
    const reserved = one(
      build('    key_name: log\n    format: json\n    reserve_time: true\n').apply(entry({ log: LINE }), 't'),
    );
    assert.equal(reserved.time, BEFORE);
    assert.deepEqual(reserved.record, { level: 'info', msg: 'hi', n: 1 }, 'the time field is still taken');
  });
});

describe('parser filter config errors', () => {
  it('names file, line and key of every mistake at once', () => {
    const errors = errorsOf(`    key_name: "$.a[oops"
    format: yaml
    reserve_data: maybe
`);
    assert.deepEqual(
      errors.map((e) => e.replace(/, got .*$/, '')),
      [
        'f.yaml:3: filters[0].key_name: invalid record path "$.a[oops" at character 4',
        'f.yaml:4: filters[0].format: expected one of "json", "regexp", "logfmt", "ltsv", "csv", "tsv", "cri", "docker", "nginx", "apache2", "apache_error", "syslog", "multi_format"',
        'f.yaml:5: filters[0].reserve_data: expected boolean',
      ],
    );
  });

  it('keys of another format, missing keys, contradictions, bad time settings', () => {
    const cases: [string, string][] = [
      ['    format: regexp\n', 'f.yaml:2: filters[0].expression: format regexp needs expression'],
      [
        '    format: json\n    parser: json\n',
        'f.yaml:5: filters[0].parser: parser is another name for format: set one',
      ],
      [
        '    reserve_data: true\n',
        'f.yaml:2: filters[0].format: required: one of json, regexp, logfmt, ltsv, csv, tsv, cri, docker, nginx, apache2, apache_error, syslog, multi_format (or parser, as Fluent Bit names it)',
      ],
      [
        '    format: nginx\n    expression: x\n',
        'f.yaml:5: filters[0].expression: expression is for format regexp, not nginx',
      ],
      ['    format: csv\n', 'f.yaml:2: filters[0].keys: format csv needs keys'],
      [
        '    format: json\n    message_format: rfc5424\n',
        'f.yaml:5: filters[0].message_format: message_format is for format syslog, not json',
      ],
      ['    format: multi_format\n', 'f.yaml:2: filters[0].patterns: format multi_format needs patterns'],
      [
        '    format: json\n    patterns: [{ format: json }]\n',
        'f.yaml:5: filters[0].patterns: patterns is for format multi_format, not json',
      ],
      [
        '    format: multi_format\n    types: a:integer\n    patterns: [{ format: json }]\n',
        'f.yaml:5: filters[0].types: with multi_format, types goes in each of patterns',
      ],
      [
        '    format: multi_format\n    patterns:\n      - { format: regexp }\n',
        'f.yaml:6: filters[0].patterns[0].expression: format regexp needs expression',
      ],
      [
        '    format: multi_format\n    patterns:\n      - { format: multi_format }\n',
        'f.yaml:6: filters[0].patterns[0].format: multi_format patterns cannot nest',
      ],
      [
        '    format: json\n    time_format: "%Y %Q"\n',
        'f.yaml:5: filters[0].time_format: time_format "%Y %Q": unsupported directive %Q',
      ],
      [
        '    format: json\n    time_format: "%s"\n    time_type: float\n',
        'f.yaml:5: filters[0].time_format: time_format is for time_type string, not float',
      ],
      [
        '    format: json\n    time_offset: CEST\n',
        'f.yaml:5: filters[0].time_offset: expected an offset like +09:00, -0500 or UTC, got "CEST"',
      ],
      [
        '    format: json\n    reserve_data: true\n    preserve_key: true\n    remove_key_name_field: true\n',
        'f.yaml:6: filters[0].preserve_key: preserve_key true contradicts remove_key_name_field true: set one',
      ],
    ];
    for (const [yaml, want] of cases) {
      const errors = errorsOf(`    key_name: log\n${yaml}`);
      assert.deepEqual(errors, [want]);
    }
  });
});

describe('parser in a running Estuary (HTTP in)', () => {
  it('a Go app JSON line inside a CRI line → parser cri → parser json (reserve_data) → the JSON fields delivered; an nginx line → parser nginx', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: http, port: ${port}, listen: 127.0.0.1 }
filters:
  - { type: parser, match: "kube.**", key_name: log, format: cri, reserve_data: true }
  - { type: parser, match: "kube.**", key_name: message, format: json, reserve_data: true }
  - { type: parser, match: "nginx.**", key_name: log, format: nginx, types: "code:integer,size:integer" }
outputs:
  - { type: scripted, id: parser-e2e, match: "kube.** nginx.**" }
`);
    try {
      // What seed 001's Go service (log/slog JSONHandler) writes, as containerd stores it.
      const goLine =
        '{"time":"2026-11-30T06:12:01.482913004Z","level":"INFO","msg":"request served","method":"GET","path":"/api/v1/metrics","status":200,"duration_ms":3.2,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}';
      const res = await postJson(port, 'kube.var.log.containers.golang-app', [
        {
          log: `2026-11-30T06:12:01.483001123Z stdout F ${goLine}`,
          kubernetes: { pod_name: 'golang-app-7d9f' },
        },
        { log: 'not a CRI line', kubernetes: { pod_name: 'golang-app-7d9f' } },
      ]);
      assert.equal(res.status, 200);
      const out = scriptedInstances.get('parser-e2e')!;
      await waitFor(() => out.delivered.length === 2, { what: 'both records delivered' });
      const [parsed, unparsed] = out.delivered;
      assert.deepEqual(parsed!.record, {
        stream: 'stdout',
        logtag: 'F',
        kubernetes: { pod_name: 'golang-app-7d9f' },
        level: 'INFO',
        msg: 'request served',
        method: 'GET',
        path: '/api/v1/metrics',
        status: 200,
        duration_ms: 3.2,
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      });
      assert.equal(
        parsed!.time.toIso(),
        '2026-11-30T06:12:01.482913004Z',
        "the app's own time, to the nanosecond",
      );
      assert.deepEqual(unparsed!.record, {
        log: 'not a CRI line',
        kubernetes: { pod_name: 'golang-app-7d9f' },
      });
      // Seed 004's access log line, as nginx's container writes it.
      const access = await postJson(port, 'nginx.access', [
        {
          log: '10.244.1.17 - - [30/Nov/2026:06:12:03 +0000] "POST /api/v1/orders HTTP/1.1" 201 512 "-" "Go-http-client/1.1"\n',
        },
      ]);
      assert.equal(access.status, 200);
      await waitFor(() => out.delivered.length === 3, { what: 'the nginx record delivered' });
      assert.deepEqual(out.delivered[2]!.record, {
        remote: '10.244.1.17',
        host: '-',
        user: '-',
        method: 'POST',
        path: '/api/v1/orders',
        code: 201,
        size: 512,
        referer: '-',
        agent: 'Go-http-client/1.1',
      });
      assert.equal(out.delivered[2]!.time.toIso(), '2026-11-30T06:12:03.000000000Z');
      const metrics = await e.metrics();
      assert.match(metrics, /estuary_filter_parse_errors_total\{plugin_id="parser\.0",type="parser"\} 1\n/);
    } finally {
      await e.stop();
    }
  });
});
