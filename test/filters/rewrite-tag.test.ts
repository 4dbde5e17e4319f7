import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventTime } from '../../src/core/event-time.ts';
import type { Filter } from '../../src/filters/filter.ts';
import { configErrors } from '../support/config.ts';
import { startEstuary } from '../support/estuary.ts';
import { buildFilter } from '../support/filters.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { freePort, waitFor } from '../support/wait.ts';

function build(yaml: string): Filter {
  return buildFilter(`filters:\n  - type: rewrite_tag\n${yaml}`);
}

const entry = (record: Record<string, unknown>) => ({ time: new EventTime(1, 0), record });

function errorsOf(yaml: string): string[] {
  return configErrors(() => build(yaml));
}

describe('rewrite_tag filter', () => {
  it("builds the new tag from $TAG, $TAG[n], the regex's groups and record fields; the first matching rule wins", () => {
    const f = build(`    rules:
      - "$kubernetes['namespace_name'] ^(kube-(\\\\w+))$ sys.$2.$TAG[1] false"
      - { key: level, regex: "^(?<lvl>err|warn)", new_tag: "alert.$1.$kubernetes['pod_name']", keep: true }
`);
    const sys = entry({ kubernetes: { namespace_name: 'kube-system', pod_name: 'dns' }, level: 'error' });
    assert.deepEqual(f.apply(sys, 'kube.var.log'), [{ entry: sys, tag: 'sys.system.var' }]);
    const app = entry({ kubernetes: { namespace_name: 'shop', pod_name: 'web-1' }, level: 'warning' });
    assert.deepEqual(f.apply(app, 'kube.var.log'), [{ entry: app }, { entry: app, tag: 'alert.warn.web-1' }]);
    const info = entry({ kubernetes: { namespace_name: 'shop' }, level: 'info' });
    assert.equal(f.apply(info, 'kube.var.log'), info, 'no rule matches: unchanged');
  });

  it('a number or boolean field is matched as its text; a missing field matches nothing', () => {
    const f = build('    rules: ["$status ^5\\\\d\\\\d$ errors.$TAG false"]\n');
    const e500 = entry({ status: 503 });
    assert.deepEqual(f.apply(e500, 'web'), [{ entry: e500, tag: 'errors.web' }]);
    const none = entry({ code: 503 });
    assert.equal(f.apply(none, 'web'), none);
  });

  it('a new tag that comes out empty, or the same, leaves the record where it is', () => {
    const f = build('    rules: ["$a ^x$ $b false"]\n');
    const e = entry({ a: 'x' });
    assert.equal(f.apply(e, 't'), e);
    const same = entry({ a: 'x', b: 't' });
    assert.equal(f.apply(same, 't'), same);
  });

  it('a bad rule stops startup with file, line and key', () => {
    const errors = errorsOf(`    rules:
      - "$log ^x$ only-three"
      - { key: log, regex: "(", new_tag: x }
      - { key: "$.a[oops", regex: x, new_tag: y }
`);
    assert.deepEqual(
      errors.map((e) => e.replace(/ \(.*$/, '')),
      [
        'f.yaml:4: filters[0].rules[0]: expected "$key regex new_tag keep"',
        'f.yaml:5: filters[0].rules[1].regex: missing )',
        'f.yaml:6: filters[0].rules[2].key: invalid record path "$.a[oops" at character 4',
      ],
    );
  });
});

describe('rewrite_tag in a running Estuary (HTTP in)', () => {
  it('re-tagged records reach the output their new tag matches; kept ones their own', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: http, port: ${port}, listen: 127.0.0.1 }
filters:
  - type: rewrite_tag
    match: "kube.**"
    rules: ["$level ^error$ alerts.$TAG true"]
outputs:
  - { type: scripted, id: rt-all, match: "kube.**" }
  - { type: scripted, id: rt-alerts, match: "alerts.**" }
`);
    try {
      const res = await postJson(port, 'kube.web', [
        { level: 'error', n: 1 },
        { level: 'info', n: 2 },
      ]);
      assert.equal(res.status, 200);
      const all = scriptedInstances.get('rt-all')!;
      const alerts = scriptedInstances.get('rt-alerts')!;
      await waitFor(() => all.delivered.length === 2 && alerts.delivered.length === 1, {
        what: 'both outputs delivered',
      });
      assert.deepEqual(
        alerts.delivered.map((d) => [d.tag, d.record.n]),
        [['alerts.kube.web', 1]],
      );
    } finally {
      await e.stop();
    }
  });
});
