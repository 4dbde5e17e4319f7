import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Entry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import type { Emission, Filter } from '../../src/filters/filter.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { buildFilter } from '../support/filters.ts';
import { waitFor } from '../support/wait.ts';

function build(yaml: string): { filter: Filter; metrics: Metrics } {
  const metrics = new Metrics();
  return { filter: buildFilter(`filters:\n  - type: throttle\n${yaml}`, 't.yaml', metrics), metrics };
}

const entry = (record: Record<string, unknown>): Entry => ({ time: new EventTime(1, 0), record });

/** How many of `n` records of namespace `ns` pass, and under which tags. */
function send(f: Filter, ns: string, n: number, tag = 'kube.app'): string[] {
  const tags: string[] = [];
  for (let i = 0; i < n; i++) {
    const out = f.apply(entry({ kubernetes: { namespace_name: ns }, i }), tag);
    if (out === null) continue;
    if (Array.isArray(out)) for (const e of out as Emission[]) tags.push(e.tag ?? tag);
    else tags.push(tag);
  }
  return tags;
}

async function droppedCount(metrics: Metrics): Promise<number> {
  const m = await metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get();
  return m.values.filter((v) => v.labels.reason === 'throttled').reduce((sum, v) => sum + v.value, 0);
}

describe('throttle filter', () => {
  it('holds each group to its limit per window and counts the drops; groups do not share a bucket', async () => {
    const { filter, metrics } = build(
      '    group_key: "$kubernetes[\'namespace_name\']"\n    group_bucket_limit: 10\n    group_bucket_period_s: 1h\n',
    );
    assert.equal(send(filter, 'noisy', 25).length, 10);
    assert.equal(send(filter, 'quiet', 5).length, 5);
    assert.equal(send(filter, 'noisy', 3, 'kube.other').length, 3, 'another tag is another group');
    assert.equal(await droppedCount(metrics), 15);
  });

  it('a new window gives the group its limit again', async () => {
    const { filter } = build('    group_bucket_limit: 2\n    group_bucket_period_s: 100ms\n');
    assert.equal(send(filter, 'a', 5).length, 2);
    const start = Date.now();
    await waitFor(() => Date.now() - start >= 100, { what: 'the window to pass' });
    assert.equal(send(filter, 'a', 5).length, 2);
  });

  it('retag sends what is over the limit on another route; group_drop_logs false passes it', async () => {
    const { filter, metrics } = build(
      '    group_bucket_limit: 2\n    group_bucket_period_s: 1h\n    retag: "throttled.$TAG"\n',
    );
    assert.deepEqual(send(filter, 'a', 4), [
      'kube.app',
      'kube.app',
      'throttled.kube.app',
      'throttled.kube.app',
    ]);
    assert.equal(await droppedCount(metrics), 0);
    const pass = build(
      '    group_bucket_limit: 2\n    group_bucket_period_s: 1h\n    group_drop_logs: false\n',
    );
    assert.equal(send(pass.filter, 'a', 4).length, 4);
    assert.equal(await droppedCount(pass.metrics), 0);
  });

  it('past max_groups, new groups share one bucket: state stays bounded', () => {
    const { filter } = build(
      '    group_key: [g]\n    group_bucket_limit: 1\n    group_bucket_period_s: 1h\n    max_groups: 3\n',
    );
    let passed = 0;
    for (let g = 0; g < 10; g++) if (filter.apply(entry({ g }), 't') !== null) passed += 1;
    // Three groups of their own, then one shared bucket of limit 1 for the other seven.
    assert.equal(passed, 4);
  });
});
