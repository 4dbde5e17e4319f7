import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CloudWatchFake } from '../../support/cloudwatch-fake.ts';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { freePort, waitFor } from '../../support/wait.ts';
import './setup.ts';

/**
 * The log group does not exist and the output may not create it: the output halts (every
 * record kept, nothing dead-lettered, inputs still acking), probes, and once the group exists
 * creates its stream and delivers everything by itself — each record once.
 */

let fake: CloudWatchFake;

before(async () => {
  fake = await CloudWatchFake.start();
});
after(() => fake.close());

describe('cloudwatch_logs output through the sink driver', () => {
  it('a missing group without auto_create_group halts the output; it resumes by itself once the group exists', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  shutdown_timeout: 2s
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: cloudwatch_logs
    id: cw
    match: "app.**"
    log_group_name: late-group
    log_stream_prefix: "app-"
    endpoint: "${fake.url}"
    buffer: { flush_interval: 100ms, retry: { wait: 100ms, max_interval: 300ms, randomize: false, max_times: 1 } }
`);
    try {
      for (let seq = 0; seq < 20; seq++) {
        const res = await postJson(port, 'app.web', { seq, msg: 'GET /cart 200' });
        await res.arrayBuffer();
        assert.equal(res.status, 200);
      }
      await waitFor(async () => (await e.halted('cw')) === 1, { what: 'estuary_output_halted 1' });
      assert.match(
        await e.haltReason('cw'),
        /The specified log group does not exist.*create the log group late-group, or set auto_create_group: true/,
      );
      assert.deepEqual(await e.app.buffer('cw')!.deadLetter.list(), []);
      assert.equal(fake.callsOf('CreateLogGroup').length, 0);

      fake.addGroup('late-group');
      await waitFor(async () => (await e.halted('cw')) === 0, {
        timeoutMs: 5000,
        what: 'the output to resume',
      });
      const seqs = await waitFor(
        () => {
          const got = fake
            .messages('late-group', 'app-app.web')
            .map((m) => (JSON.parse(m) as { seq: number }).seq);
          return got.length >= 20 ? got : undefined;
        },
        { what: 'all 20 records in the stream' },
      );
      assert.deepEqual(
        seqs.sort((a, b) => a - b),
        Array.from({ length: 20 }, (_, i) => i),
      );
      assert.deepEqual(await e.app.buffer('cw')!.deadLetter.list(), []);
    } finally {
      await e.stop();
    }
  });
});
