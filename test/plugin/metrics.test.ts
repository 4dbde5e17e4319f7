import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { pluginMetrics } from '../../src/plugin/metrics.ts';
import { parseSamples, sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';
import { recorderPlugin, scratchDir } from './fixtures.ts';

describe('plugin metrics', () => {
  it('one metric per name, a plugin_id label per instance, the estuary_plugin_ prefix added once', async () => {
    const registry = new Registry();
    const a = pluginMetrics(registry, 'a');
    const b = pluginMetrics(registry, 'b');
    const sentA = a.counter('sent_total', 'Sent.', ['code']);
    const sentB = b.counter('estuary_plugin_sent_total', 'Sent.', ['code']);
    assert.equal(sentA.name, 'estuary_plugin_sent_total');
    assert.equal(sentB.name, 'estuary_plugin_sent_total');
    sentA.inc({ code: 200 }, 2);
    sentA.inc();
    sentB.inc({ code: 500 });
    const depth = a.gauge('depth', 'Depth.');
    depth.set(7);
    depth.dec(2);
    const latency = b.histogram('latency_seconds', 'Latency.', [], [0.1, 1]);
    latency.observe(0.5);
    const text = await registry.metrics();
    assert.equal(sample(text, 'estuary_plugin_sent_total', { plugin_id: 'a', code: '200' }).value, 2);
    assert.equal(
      parseSamples(text).filter(
        (s) => s.name === 'estuary_plugin_sent_total' && s.labels.code === undefined,
      )[0]?.labels.plugin_id,
      'a',
    );
    assert.equal(sample(text, 'estuary_plugin_sent_total', { plugin_id: 'b', code: '500' }).value, 1);
    assert.equal(sample(text, 'estuary_plugin_depth', { plugin_id: 'a' }).value, 5);
    assert.equal(sample(text, 'estuary_plugin_latency_seconds_bucket', { plugin_id: 'b', le: '1' }).value, 1);
    assert.equal(
      sample(text, 'estuary_plugin_latency_seconds_bucket', { plugin_id: 'b', le: '0.1' }).value,
      0,
    );
  });

  it('refuses a second shape for a name, the plugin_id label, and names Prometheus cannot take', () => {
    const m = pluginMetrics(new Registry(), 'a');
    m.counter('sent_total', 'Sent.', ['code']);
    assert.throws(() => m.gauge('sent_total', 'Sent.', ['code']), /already registered as counter \[code\]/);
    assert.throws(() => m.counter('sent_total', 'Sent.', ['status']), /already registered/);
    assert.throws(() => m.counter('x_total', 'X.', ['plugin_id']), /plugin_id is the label Estuary adds/);
    assert.throws(() => m.counter('bad-name', 'X.'), /not a Prometheus name/);
    assert.throws(() => m.histogram('h', 'H.', [], [1]) && m.histogram('h', 'H.', [], [2]), /buckets/);
    // A histogram's _bucket / _sum / _count series, either way round.
    m.histogram('req_seconds', 'Requests.');
    assert.throws(
      () => m.counter('req_seconds_count', 'C.'),
      /series estuary_plugin_req_seconds_count is already/,
    );
    m.counter('calls_sum', 'Calls.');
    assert.throws(() => m.histogram('calls', 'H.'), /series estuary_plugin_calls_sum is already/);
  });

  it('with service.workers: 2, each worker loads the plugin and /metrics sums their plugin metrics', async () => {
    const scratch = scratchDir('estuary-plugin-workers-');
    after(() => scratch.remove());
    scratch.write('recorder.js', recorderPlugin('recorder', false));
    const [http, admin] = [await freePort(), await freePort()];
    const file = scratch.write(
      'estuary.yaml',
      `plugins: [./recorder.js]
service:
  workers: 2
  shutdown_timeout: 5s
  http: { listen: 127.0.0.1, port: ${admin} }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${http} }
outputs:
  - { type: recorder, id: a, match: "a", file: a.ndjson, label: one }
  - { type: recorder, id: b, match: "b", file: b.ndjson, label: two }
`,
    );
    const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`exited: ${stderr}`);
          return (await fetch(`http://127.0.0.1:${admin}/readyz`)).ok;
        },
        { timeoutMs: 20_000, what: 'both workers ready' },
      );
      // A worker's entry has no outputs until it has answered the supervisor once.
      const status = async () =>
        (
          (await (await fetch(`http://127.0.0.1:${admin}/api/v1/status`)).json()) as {
            workers: { outputs?: { id: string; buffer: { emitRecords: number } }[] }[];
          }
        ).workers.map((w) => Object.fromEntries((w.outputs ?? []).map((o) => [o.id, o.buffer.emitRecords])));
      // Each worker built both plugin outputs from the config it read itself.
      await waitFor(
        async () => {
          const keys = (await status()).map((w) => Object.keys(w).sort().join());
          return keys.length === 2 && keys.every((k) => k === 'a,b');
        },
        { what: 'both workers listing both plugin outputs' },
      );
      // Concurrent connections, each its own, until both workers have taken some (the kernel
      // or the supervisor decides which worker takes a connection).
      let sent = 0;
      await waitFor(
        async () => {
          await Promise.all(
            Array.from({ length: 4 }, async (_, i) => {
              assert.equal(await postOnce(http, 'a', [{ i }]), 200);
              assert.equal(await postOnce(http, 'b', [{ i }, { i }]), 200);
            }),
          );
          sent += 4;
          return (await status()).every((w) => (w.a ?? 0) > 0);
        },
        { what: 'records in both workers', timeoutMs: 10_000 },
      );
      const metrics = async () => (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const value = (text: string, id: string) =>
        sample(text, 'estuary_plugin_recorder_records_total', { plugin_id: id }).value;
      const text = await waitFor(
        async () => {
          const t = await metrics();
          return value(t, 'a') === sent && value(t, 'b') === 2 * sent ? t : undefined;
        },
        { what: 'the plugin counters of both workers, summed' },
      );
      assert.equal(
        parseSamples(text).filter((s) => s.name === 'estuary_plugin_recorder_records_total').length,
        2,
        'one series per plugin_id',
      );
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    }
  });
});

/** A JSON POST on a connection of its own (fetch would reuse one, and so one worker). */
function postOnce(port: number, tag: string, body: unknown): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/${tag}`,
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}
