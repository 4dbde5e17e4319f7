import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { lokiSchema } from '../../../src/outputs/loki/config.ts';

const parse = (options: Record<string, unknown>) => lokiSchema.safeParse(options);
const problems = (options: Record<string, unknown>) => {
  const r = parse(options);
  assert.equal(r.success, false, 'expected a config error');
  return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('loki config', () => {
  it('defaults: local Loki, protobuf, job=fluent-bit, json lines, 1MiB requests, 1000 values per label', () => {
    const c = lokiSchema.parse({});
    assert.equal(c.url, 'http://localhost:3100/loki/api/v1/push');
    assert.equal(c.encoding, 'protobuf');
    assert.deepEqual(c.labels, [{ name: 'job', value: 'fluent-bit' }]);
    assert.equal(c.line_format, 'json');
    assert.equal(c.drop_single_key, false);
    assert.equal(c.batch_size, 1024 * 1024);
    assert.equal(c.max_label_values, 1000);
    assert.equal(c.request_timeout, 10_000);
  });

  it('a bare URL gets the push path; a full one is kept', () => {
    assert.equal(lokiSchema.parse({ url: 'http://loki:3100' }).url, 'http://loki:3100/loki/api/v1/push');
    assert.equal(
      lokiSchema.parse({ url: 'https://logs.example.com/api/prom/push' }).url,
      'https://logs.example.com/api/prom/push',
    );
  });

  it('lists take the plugins’ comma-separated strings too', () => {
    const c = lokiSchema.parse({
      label_keys: "kubernetes.namespace_name, $kubernetes['pod_name']",
      remove_keys: 'kubernetes.pod_id,stream',
      structured_metadata: ['trace_id'],
      drop_single_key: 'raw',
      tenant_id_key: 'kubernetes.namespace_name',
    });
    assert.deepEqual(c.label_keys, [
      { name: 'namespace_name', path: ['kubernetes', 'namespace_name'] },
      { name: 'pod_name', path: ['kubernetes', 'pod_name'] },
    ]);
    assert.deepEqual(c.remove_keys, [['kubernetes', 'pod_id'], ['stream']]);
    assert.deepEqual(c.structured_metadata, [{ name: 'trace_id', path: ['trace_id'] }]);
    assert.equal(c.drop_single_key, 'raw');
    assert.deepEqual(c.tenant_id_key, ['kubernetes', 'namespace_name']);
  });

  it('refuses what cannot work, every problem at once', () => {
    assert.deepEqual(
      problems({
        url: 'ftp://loki',
        labels: '{job=1}',
        compression: 'gzip',
        username: 'u',
        bearer_token: 't',
        tenant_id: 'a/b',
        line_format: 'logfmt',
        colour: 'blue',
      }),
      [
        'url: expected an http:// or https:// URL, got "ftp://loki"',
        'labels: expected name="value" at character 2 of "{job=1}"',
        'line_format: Invalid option: expected one of "json"|"key_value"',
        ': Unrecognized key: "colour"',
      ],
    );
    assert.deepEqual(problems({ compression: 'gzip', username: 'u', bearer_token: 't', tenant_id: 'a/b' }), [
      'username: username needs a password',
      'bearer_token: set bearer_token or username, not both',
      'compression: protobuf bodies are snappy-compressed by the push format; gzip is for encoding: json',
      "tenant_id: not a valid Loki tenant id: 1 to 150 of the characters a-z A-Z 0-9 ! - _ . * ' ( ), and not . or ..",
    ]);
    assert.match(problems({ url: 'http://u:p@loki:3100' })[0]!, /credentials in username and password/);
  });

  it('is registered as type loki, with file and line in errors', () => {
    assert.ok(builtinRegistry().types('output').includes('loki'));
    assert.throws(
      () => loadConfig('outputs:\n  - type: loki\n    line_format: xml\n', 'l.yaml', builtinRegistry(), {}),
      /l\.yaml:3: outputs\[0\]\.line_format/,
    );
  });
});
