import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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

describe('what a config does not use is not loaded', () => {
  it('a memory-buffer config with forward, HTTP and stdout loads no Redis, Elasticsearch or Loki client', () => {
    // Every module URL the process loads, recorded by a module hook, after a full start.
    const script = `
      import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
      const { Estuary } = await import('./src/app.ts');
      const { builtinRegistry } = await import('./src/builtins.ts');
      const { loadConfig } = await import('./src/config/load.ts');
      const { silentLogger } = await import('./src/logger.ts');
      const registry = builtinRegistry();
      const config = loadConfig(
        'inputs: [{ type: forward, port: 0 }, { type: http, port: 0 }]\\noutputs: [{ type: stdout }]',
        't.yaml', registry, {});
      const app = await Estuary.create(config, { registry, logger: silentLogger() });
      await app.start();
      await app.stop();
      process.stdout.write(JSON.stringify(loaded));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const loaded = JSON.parse(run.stdout) as string[];
    assert.ok(
      loaded.some((u) => u.endsWith('/src/inputs/forward/index.ts')),
      'the hook saw our modules',
    );
    const heavy = loaded.filter((u) =>
      /\/node_modules\/(ioredis|@elastic)\/|\/src\/(buffer\/redis|outputs\/elasticsearch\/client|outputs\/loki\/client|delivery\/http-client)/.test(
        u,
      ),
    );
    assert.deepEqual(heavy, []);
  });
});
