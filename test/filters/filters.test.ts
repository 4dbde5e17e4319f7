import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import type { Entry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { parseRecordPath } from '../../src/core/record-path.ts';
import type { Filter } from '../../src/filters/filter.ts';
import { buildFilter } from '../support/filters.ts';

function build(type: string, yamlOptions: string): Filter {
  return buildFilter(`filters:\n  - { type: ${type}, ${yamlOptions} }\n`);
}

const entry = (record: Record<string, unknown>) => ({ time: new EventTime(1, 0), record });

/** The one entry a 1:1 filter gave back. */
function one(result: ReturnType<Filter['apply']>): Entry {
  assert.ok(result !== null && !Array.isArray(result), `one entry, got ${JSON.stringify(result)}`);
  return result as Entry;
}

describe('record paths', () => {
  it('reads Fluentd and Fluent Bit accessor spellings', () => {
    assert.deepEqual(parseRecordPath('$.kubernetes.namespace_name'), ['kubernetes', 'namespace_name']);
    assert.deepEqual(parseRecordPath("$['kubernetes']['labels']['app.kubernetes.io/name']"), [
      'kubernetes',
      'labels',
      'app.kubernetes.io/name',
    ]);
    assert.deepEqual(parseRecordPath("$kubernetes['pod_name']"), ['kubernetes', 'pod_name']);
    assert.deepEqual(parseRecordPath('a.b'), ['a.b']);
    assert.throws(() => parseRecordPath('$.a[oops'), /invalid record path/);
  });
});

describe('grep filter', () => {
  it('keeps records where every regexp matches and none of exclude does', () => {
    const f = build(
      'grep',
      'regexp: [{ key: level, pattern: "^(warn|error)$" }, { key: "$.k8s.ns", pattern: prod }], exclude: [{ key: msg, pattern: healthz }]',
    );
    assert.ok(f.apply(entry({ level: 'error', k8s: { ns: 'prod-eu' }, msg: 'boom' }), 't'));
    assert.equal(f.apply(entry({ level: 'info', k8s: { ns: 'prod' }, msg: 'x' }), 't'), null);
    assert.equal(f.apply(entry({ level: 'warn', msg: 'x' }), 't'), null, 'a missing key fails a regexp');
    assert.equal(f.apply(entry({ level: 'warn', k8s: { ns: 'prod' }, msg: 'GET /healthz' }), 't'), null);
  });

  it("takes Fluentd's Ruby regex syntax: \\h, POSIX brackets, /…/i", () => {
    const f = build(
      'grep',
      'regexp: [{ key: id, pattern: "^\\\\h{8}$" }, { key: level, pattern: "/^[[:upper:]]+$/i" }]',
    );
    assert.ok(f.apply(entry({ id: 'deadBEEF', level: 'warn' }), 't'));
    assert.equal(f.apply(entry({ id: 'deadBEEG', level: 'warn' }), 't'), null);
  });

  it('rejects an invalid pattern at config time, with its place', () => {
    assert.throws(
      () => build('grep', 'regexp: [{ key: a, pattern: "(" }]'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /f\.yaml:2: filters\[0\]\.regexp\[0\]\.pattern: missing \)/.test(err.message),
    );
  });
});

describe('record_modifier filter', () => {
  it('adds templated keys, removes keys and paths, keeps an allowlist', () => {
    const f = build(
      'record_modifier',
      'record: { host: "${hostname}", src: "${tag_parts[1]}", tagged: "${tag}", n: 1 }, remove_keys: [secret, "$.k8s.annotations"]',
    );
    const out = one(
      f.apply(entry({ msg: 'm', secret: 's', k8s: { annotations: { a: 1 }, pod: 'p' } }), 'kube.web.x'),
    );
    assert.deepEqual(out.record, {
      msg: 'm',
      k8s: { pod: 'p' },
      host: hostname(),
      src: 'web',
      tagged: 'kube.web.x',
      n: 1,
    });
    const allow = build('record_modifier', 'allowlist_keys: [msg]');
    assert.deepEqual(one(allow.apply(entry({ msg: 'm', other: 1 }), 't')).record, { msg: 'm' });
  });
});
