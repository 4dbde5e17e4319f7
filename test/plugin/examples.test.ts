/** The two example plugins loaded by a config, as `estuary run` loads them: TCP lines in, webhook out. */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Reply, ScriptedHttpSink } from '../../src/plugin/testing.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { scratchDir, startWithPlugins } from './fixtures.ts';

describe('examples/plugins in a running Estuary', () => {
  const scratch = scratchDir();
  after(() => scratch.remove());

  it('lines acked over TCP reach the webhook as JSON arrays, a 503 retried in between', async () => {
    const answers: Reply[] = [{ status: 503, headers: { 'retry-after': '0' } }];
    const sink = await ScriptedHttpSink.start(() => answers.shift() ?? { status: 200 });
    const port = await freePort();
    const e = await startWithPlugins(
      join(scratch.dir, 'estuary.yaml'),
      `plugins:
  - ${resolve('examples/plugins/tcp-json-lines/index.ts')}
  - ${resolve('examples/plugins/webhook-output/index.ts')}
inputs:
  - { type: tcp_json_lines, id: lines, listen: 127.0.0.1, port: ${port}, tag: app.lines }
outputs:
  - { type: webhook, id: hook, url: "${sink.url}/in", buffer: { flush_interval: 20ms, retry: { wait: 10ms } } }
`,
    );
    try {
      const socket = connect(port, '127.0.0.1');
      let replies = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        replies += d;
      });
      socket.write('{"n":1}\n{"n":2}\n');
      await waitFor(() => replies === 'ok\nok\n', { what: 'two acks' });
      socket.destroy();
      await waitFor(() => sink.requests.length === 2, { what: 'the 503 and the retry' });
      assert.deepEqual(
        sink.requests.map((r) => JSON.parse(r.text)),
        [
          [{ n: 1 }, { n: 2 }],
          [{ n: 1 }, { n: 2 }],
        ],
      );
      const text = await e.metrics();
      assert.equal(sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'lines' }).value, 2);
      assert.equal(
        sample(text, 'estuary_plugin_webhook_posts_total', { plugin_id: 'hook', status: '503' }).value,
        1,
      );
      assert.equal(
        sample(text, 'estuary_plugin_webhook_posts_total', { plugin_id: 'hook', status: '200' }).value,
        1,
      );
      assert.equal(sample(text, 'fluentd_output_status_retry_count', { plugin_id: 'hook' }).value, 1);
    } finally {
      await e.stop();
      await sink.close();
    }
  });
});
