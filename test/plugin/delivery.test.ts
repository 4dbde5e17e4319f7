/**
 * A plugin output's errors steer its buffer as a built-in's do: the same sink driver decides
 * (retry then deliver, dead-letter, halt and resume).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { postJson } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { recorderPlugin, scratchDir, startWithPlugins } from './fixtures.ts';

describe('a plugin output under the sink driver', async () => {
  const scratch = scratchDir();
  scratch.write('recorder.js', recorderPlugin('recorder', false));
  const port = await freePort();
  const e = await startWithPlugins(
    join(scratch.dir, 'estuary.yaml'),
    `plugins: [./recorder.js]
inputs:
  - { type: http, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: recorder, id: flaky, match: flaky, file: flaky.ndjson, label: f, fail_times: 2 }
  - { type: recorder, id: picky, match: picky, file: picky.ndjson, label: p }
  - { type: recorder, id: locked, match: locked, file: locked.ndjson, label: l,
      buffer: { retry: { max_times: 0, max_interval: 50ms } } }
`,
  );
  after(async () => {
    await e.stop();
    scratch.remove();
  });
  const written = (name: string) => {
    const file = join(scratch.dir, name);
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  };
  const labels = (id: string) => ({ plugin_id: id, type: 'recorder' });

  it('RetryableError: retried with backoff, then delivered once', async () => {
    assert.equal((await postJson(port, 'flaky', [{ n: 1 }, { n: 2 }])).status, 200);
    await waitFor(() => written('flaky.ndjson').length === 2, { what: 'delivery after two failures' });
    const text = await e.metrics();
    assert.equal(sample(text, 'fluentd_output_status_retry_count', labels('flaky')).value, 2);
    assert.equal((await e.app.buffer('flaky')!.deadLetter.list()).length, 0);
    assert.deepEqual(written('flaky.ndjson'), ['{"n":1}', '{"n":2}']);
  });

  it('RejectError: the chunk is dead-lettered with the reason, not retried', async () => {
    assert.equal((await postJson(port, 'picky', [{ n: 1 }, { n: 2, poison: true }])).status, 200);
    const dlq = e.app.buffer('picky')!.deadLetter;
    const dead = await waitFor(async () => {
      const list = await dlq.list();
      return list.length === 1 ? list[0] : undefined;
    });
    assert.match(dead.reason, /400 poison/);
    assert.equal(dead.count, 2);
    assert.deepEqual(written('picky.ndjson'), []);
    assert.equal(sample(await e.metrics(), 'fluentd_output_status_retry_count', labels('picky')).value, 0);
  });

  it('HaltError: halted with its data kept (max_times 0 does not run down), then resumes by itself', async () => {
    const flag = join(scratch.dir, 'locked.ndjson.halt');
    writeFileSync(flag, '');
    assert.equal((await postJson(port, 'locked', [{ n: 1 }])).status, 200);
    await waitFor(
      async () => sample(await e.metrics(), 'estuary_output_halted', labels('locked')).value === 1,
      {
        what: 'halted',
      },
    );
    // Probes keep failing with the halt: still nothing dead-lettered, nothing written.
    await waitFor(
      async () =>
        sample(await e.metrics(), 'estuary_plugin_recorder_writes_total', {
          plugin_id: 'locked',
          outcome: 'halt',
        }).value >= 3,
      { what: 'three probes' },
    );
    assert.equal((await e.app.buffer('locked')!.deadLetter.list()).length, 0);
    assert.equal(
      e.app.status().outputs.find((o) => o.id === 'locked')!.buffer.haltReason,
      '401 unauthorized',
    );
    rmSync(flag);
    await waitFor(() => written('locked.ndjson').length === 1, { what: 'delivery after the halt' });
    assert.equal(sample(await e.metrics(), 'estuary_output_halted', labels('locked')).value, 0);
    assert.equal((await e.app.buffer('locked')!.deadLetter.list()).length, 0);
  });
});
