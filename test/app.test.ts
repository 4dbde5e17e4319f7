import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startEstuary } from './support/estuary.ts';
import { postJson } from './support/http.ts';
import { scriptedInstances } from './support/outputs.ts';
import { sample } from './support/prom-text.ts';
import { freePort, waitFor } from './support/wait.ts';

describe('estuary end to end (HTTP in, scripted sinks out)', async () => {
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms, retry: { wait: 10ms, randomize: false } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: flaky, match: "app.**", fail_times: 3 }
  - { type: scripted, id: broken, match: "app.web", fatal: true }
  - { type: scripted, id: slow, match: "slow.**", delay_ms: 100, buffer: { flush_interval: 1h } }
`);
  after(() => e.stop());
  const post = (tag: string, body: unknown) => postJson(port, tag, body);

  it('delivers once through 3 failures; retry_count 3; the fatal sink dead-letters; metrics move', async () => {
    const res = await post('app.web', [{ msg: 'a' }, { msg: 'b' }]);
    assert.equal(res.status, 200);
    const flaky = scriptedInstances.get('flaky')!;
    await waitFor(() => flaky.delivered.length === 2, { what: 'flaky output delivery' });
    assert.deepEqual(
      flaky.delivered.map((x) => x.record.msg),
      ['a', 'b'],
    );
    assert.deepEqual(
      flaky.writes.map((w) => w.attempt),
      [0, 1, 2, 3],
    );

    await waitFor(async () => (await e.app.buffer('broken')!.deadLetter.list()).length === 1, {
      what: 'dead-letter',
    });
    const text = await e.metrics();
    const labels = (id: string) => ({ plugin_id: id, type: 'scripted' });
    assert.equal(sample(text, 'fluentd_output_status_retry_count', labels('flaky')).value, 3);
    assert.equal(sample(text, 'fluentd_output_status_num_errors', labels('broken')).value, 1);
    assert.equal(sample(text, 'estuary_dead_letter_records', labels('broken')).value, 2);
    assert.equal(
      sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'in', type: 'http' }).value,
      2,
    );
    assert.equal(sample(text, 'estuary_output_records_delivered_total', labels('flaky')).value, 2);
  });

  it('stop() drains a slow output before returning (SIGTERM path)', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await post('slow.job', { i })).status, 200);
    const slow = scriptedInstances.get('slow')!;
    assert.equal(slow.delivered.length, 0, 'flush_interval 1h: nothing flushed yet');
    await e.stop();
    assert.equal(slow.delivered.length, 5);
  });
});
