import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import type { Entry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import type { Filter } from '../../src/filters/filter.ts';
import { buildFilter } from '../support/filters.ts';

const T = new EventTime(1_700_000_000, 5);

function build(yaml: string): Filter {
  return buildFilter(`filters:\n  - type: record_transformer\n${yaml}`);
}

/** The record (and time) the filter makes of `record` under `tag`. */
function apply(f: Filter, record: Record<string, unknown>, tag = 'kube.shop.web'): Entry {
  const out = f.apply({ time: T, record }, tag);
  assert.ok(out !== null && !Array.isArray(out));
  return out as Entry;
}

describe('record_transformer filter', () => {
  it('sets fields from templates: tag parts, hostname, time, and record fields (a lone field keeps its type)', () => {
    const f = build(`    record:
      pod: "$kubernetes['pod_name']"
      labels: "\${record[\\"kubernetes\\"][\\"labels\\"]}"
      where: "\${tag_parts[1]}/\${tag_suffix[-1]} on \${hostname}"
      prefix: "\${tag_prefix[1]}"
      summary: "$kubernetes['pod_name'] said $level at \${time}"
      missing: "[$nope]"
      fixed: 3
`);
    const original = { level: 'warn', kubernetes: { pod_name: 'web-1', labels: { app: 'shop' } } };
    const out = apply(f, original);
    assert.deepEqual(out.record, {
      ...original,
      pod: 'web-1',
      labels: { app: 'shop' },
      where: `shop/web on ${hostname()}`,
      prefix: 'kube.shop',
      summary: 'web-1 said warn at 2023-11-14T22:13:20.000000005Z',
      missing: '[]',
      fixed: 3,
    });
    assert.deepEqual(Object.keys(original), ['level', 'kubernetes'], 'the original record is unchanged');
  });

  it('renames, copies and removes by record path, without changing the record it was given', () => {
    const f = build(`    rename_keys: { "$.k8s.pod": pod_name, msg: message }
    copy_keys: { "$.k8s.ns": "$.meta.namespace" }
    remove_keys: ["$.k8s.secret"]
`);
    const original = { msg: 'hi', k8s: { pod: 'p', ns: 'n', secret: 's' } };
    const out = apply(f, original);
    assert.deepEqual(out.record, {
      k8s: { ns: 'n' },
      pod_name: 'p',
      message: 'hi',
      meta: { namespace: 'n' },
    });
    assert.deepEqual(original, { msg: 'hi', k8s: { pod: 'p', ns: 'n', secret: 's' } });
  });

  it('renew_record keeps only keep_keys; nest and lift as Fluent Bit', () => {
    const renew = build('    renew_record: true\n    keep_keys: [log]\n    record: { source: "${tag}" }\n');
    assert.deepEqual(apply(renew, { log: 'x', noise: 1 }).record, { log: 'x', source: 'kube.shop.web' });
    const nest = build(
      '    nest: { wildcard: ["kubernetes_*"], nest_under: kubernetes, remove_prefix: kubernetes_ }\n',
    );
    assert.deepEqual(apply(nest, { log: 'x', kubernetes_pod: 'p', kubernetes_ns: 'n' }).record, {
      log: 'x',
      kubernetes: { pod: 'p', ns: 'n' },
    });
    const lift = build('    lift: { nested_under: kubernetes, add_prefix: k8s_ }\n');
    assert.deepEqual(apply(lift, { log: 'x', kubernetes: { pod: 'p' } }).record, { log: 'x', k8s_pod: 'p' });
  });

  it('condition gates every change; renew_time_key takes the time from a field', () => {
    const f = build(
      '    condition: { key: level, regex: "^error$" }\n    record: { alert: true }\n    renew_time_key: at\n',
    );
    const info = { level: 'info', at: '2024-01-01T00:00:00Z' };
    const e = { time: T, record: info };
    assert.equal(f.apply(e, 't'), e, 'no match: the very same entry');
    const out = apply(f, { level: 'error', at: '2024-01-01T00:00:00.5Z' });
    assert.deepEqual(out.record, { level: 'error', at: '2024-01-01T00:00:00.5Z', alert: true });
    assert.deepEqual([out.time.sec, out.time.nsec], [1_704_067_200, 500_000_000]);
  });

  it('a bad path or regex stops startup with file, line and key', () => {
    assert.throws(
      () => build('    condition: { key: level, regex: "(" }\n'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^f\.yaml:3: filters\[0\]\.condition\.regex: missing \)/.test(err.message),
    );
    assert.throws(
      () => build('    rename_keys: { a: "$.b[oops" }\n'),
      (err: unknown) =>
        err instanceof ConfigError &&
        /^f\.yaml:3: filters\[0\]\.rename_keys\.a: invalid record path/.test(err.message),
    );
  });
});

describe('record_modifier keeps its meaning', () => {
  it('`$name` in a value is text, not a field; removal copies instead of changing the record in place', () => {
    const f = buildFilter(
      'filters:\n  - { type: record_modifier, record: { cost: "$price ${tag}" }, remove_keys: ["$.k8s.secret"] }\n',
    );
    const original = { price: 5, k8s: { secret: 's', pod: 'p' } };
    const out = f.apply({ time: T, record: original }, 'shop') as Entry;
    assert.deepEqual(out.record, { price: 5, k8s: { pod: 'p' }, cost: '$price shop' });
    assert.deepEqual(original.k8s, { secret: 's', pod: 'p' });
  });
});
