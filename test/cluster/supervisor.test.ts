import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FluentClient } from '@fluent-org/logger';
import { ElasticsearchFake } from '../support/elasticsearch-fake.ts';
import { postJson } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { assertPromtoolAccepts } from '../support/promtool.ts';
import { freePort, waitFor } from '../support/wait.ts';

const TOKEN = 'cluster-token';

interface WorkerStatus {
  worker: number;
  pid: number | null;
  restarts: number;
  ready: boolean;
  inputs: { id: string }[];
  outputs: { id: string; buffer: { emitRecords: number; deadLetterChunks: number } }[];
}

/** `estuary run` with service.workers: 2, as a real process tree. */
async function startCluster(body: (ports: { forward: number; http: number }) => string, detached = false) {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-cluster-'));
  const ports = { forward: await freePort(), http: await freePort(), admin: await freePort() };
  const file = join(dir, 'estuary.yaml');
  writeFileSync(
    file,
    `service:
  workers: 2
  shutdown_timeout: 5s
  http: { listen: 127.0.0.1, port: ${ports.admin}, auth_tokens: [${TOKEN}] }
${body(ports)}`,
  );
  const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    // Its own process group, for a signal to the whole group (systemd, kill -- -PGID).
    detached,
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${ports.admin}${path}`, init);
  const status = async () =>
    (await (await admin('/api/v1/status')).json()) as { ready: boolean; workers: WorkerStatus[] };
  const metrics = async () => (await admin('/metrics')).text();
  const ready = () =>
    Promise.race([
      waitFor(async () => (await admin('/readyz').catch(() => undefined))?.status === 200, {
        timeoutMs: 15_000,
        what: 'every worker ready',
      }),
      exited.then((code) => {
        throw new Error(`exited ${code}: ${stderr}`);
      }),
    ]);
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    return exited;
  };
  return { ports, child, exited, admin, status, metrics, ready, stop, stderr: () => stderr };
}

/** One forward connection per client; the supervisor hands connections to workers in turn. */
async function sendForward(
  port: number,
  clients: number,
  records: number,
  record: (c: number, i: number) => object,
) {
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const client = new FluentClient('app', {
        socket: { host: '127.0.0.1', port },
        ack: { ackTimeout: 10_000 },
      });
      // emit resolves on the ack: the records are in that worker's buffer.
      await Promise.all(Array.from({ length: records }, (_, i) => client.emit('fwd', record(c, i))));
      await client.disconnect();
    }),
  );
}

describe('service.workers: 2 (estuary run, a real process tree)', () => {
  let es: ElasticsearchFake;
  before(async () => {
    es = await ElasticsearchFake.start();
  });
  after(async () => {
    await es.stop();
  });

  test('workers share the ports; /metrics and /api/v1/status cover both; SIGTERM drains every worker', async () => {
    const index = 'drain';
    const cluster = await startCluster(
      ({ forward, http }) => `  buffer: { flush_interval: 1h }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${forward} }
  - { type: http, id: web, listen: 127.0.0.1, port: ${http} }
outputs:
  - { type: elasticsearch, id: es, hosts: ["${es.url}"], index: ${index} }
`,
    );
    try {
      await cluster.ready();
      await sendForward(cluster.ports.forward, 6, 50, (c, i) => ({ c, i }));
      for (let i = 0; i < 10; i++)
        assert.equal(
          (
            await postJson(cluster.ports.http, 'app.web', [
              { i, n: 0 },
              { i, n: 1 },
            ])
          ).status,
          200,
        );

      const { ready, workers } = await cluster.status();
      assert.equal(ready, true);
      assert.deepEqual(
        workers.map((w) => w.worker),
        [1, 2],
      );
      assert.equal(new Set(workers.map((w) => w.pid)).size, 2, 'two processes');
      assert.ok(workers.every((w) => w.pid !== process.pid && w.inputs.length === 2));
      const buffered = workers.map((w) => w.outputs[0]!.buffer.emitRecords);
      assert.ok(
        buffered.every((n) => n > 0),
        `both workers took connections: ${buffered}`,
      );
      assert.equal(
        buffered.reduce((a, b) => a + b),
        320,
      );

      const text = await cluster.metrics();
      assert.equal(
        sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'forward.0' }).value,
        300,
      );
      assert.equal(sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'web' }).value, 20);
      assert.equal(
        sample(text, 'fluentd_output_status_buffer_total_bytes', { plugin_id: 'es' }).value > 0,
        true,
      );
      assert.equal(sample(text, 'estuary_workers').value, 2);
      assert.equal(sample(text, 'estuary_worker_restarts_total').value, 0);
      await assertPromtoolAccepts(text);
      assert.equal(es.documents(index).length, 0, 'flush_interval 1h: nothing delivered yet');
    } finally {
      assert.equal(await cluster.stop(), 0, cluster.stderr());
    }
    // Both workers flushed at shutdown: every acknowledged record arrived.
    assert.equal(es.documents(index).length, 320);
    assert.match(cluster.stderr(), /"msg":"stopping: flushing every worker"/);
  });

  test('dead letters of every worker show as one queue; a killed worker is replaced', async () => {
    const index = 'restart';
    es.itemFault = (action) =>
      action.source?.bad
        ? { status: 400, type: 'mapper_parsing_exception', reason: 'bad record' }
        : undefined;
    const cluster = await startCluster(
      ({ forward }) => `  buffer: { flush_interval: 100ms }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${forward} }
outputs:
  - { type: elasticsearch, id: es, hosts: ["${es.url}"], index: ${index} }
`,
    );
    try {
      await cluster.ready();
      await sendForward(cluster.ports.forward, 4, 20, (c, i) => ({ c, i, bad: i % 10 === 0 }));
      await waitFor(() => es.documents(index).length === 72, { what: 'the good records', timeoutMs: 10_000 });
      const perWorker = async () =>
        (await cluster.status()).workers.map((w) => w.outputs[0]!.buffer.deadLetterChunks);
      await waitFor(async () => (await perWorker()).every((n) => n > 0), {
        what: 'dead letters in both workers',
      });

      const list = (await (await cluster.admin('/api/v1/outputs/es/dead-letter')).json()) as {
        chunks: { id: string; count: number }[];
      };
      assert.equal(
        list.chunks.reduce((n, c) => n + c.count, 0),
        8,
        'every rejected record, whichever worker holds it',
      );
      assert.equal(
        list.chunks.length,
        (await perWorker()).reduce((a, b) => a + b),
      );
      const shown = await cluster.admin(`/api/v1/outputs/es/dead-letter/${list.chunks.at(-1)!.id}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.equal(shown.status, 200);
      assert.ok(
        ((await shown.json()) as { entries: { record: { bad: boolean } }[] }).entries.every(
          (e) => e.record.bad,
        ),
      );
      assert.equal((await cluster.admin('/api/v1/outputs/nope/dead-letter')).status, 404);
      const purged = await cluster.admin('/api/v1/outputs/es/dead-letter', {
        method: 'DELETE',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      assert.deepEqual(await purged.json(), { removed: list.chunks.length });

      const counted = async () =>
        sample(await cluster.metrics(), 'fluentd_input_status_num_records_total', { plugin_id: 'forward.0' })
          .value;
      // Prometheus scrapes: from here on no counter of the sum may go back.
      assert.equal(await counted(), 80);
      const before = (await cluster.status()).workers[0]!;
      process.kill(before.pid!, 'SIGKILL');
      await waitFor(
        async () => {
          const w = (await cluster.status()).workers[0]!;
          return w.pid !== before.pid && w.ready;
        },
        { what: 'worker 1 replaced', timeoutMs: 15_000 },
      );
      await cluster.ready();
      const text = await cluster.metrics();
      assert.equal(sample(text, 'estuary_worker_restarts_total').value, 1);
      assert.equal((await cluster.status()).workers[0]!.restarts, 1);
      // Both places take traffic again.
      await sendForward(cluster.ports.forward, 4, 5, (c, i) => ({ c, i, after: true }));
      await waitFor(() => es.documents(index).length === 92, { what: 'records after the restart' });
      // The dead worker's count (as last scraped) stays in the sum: else Prometheus sees a reset.
      assert.equal(await counted(), 100);
      assert.match(cluster.stderr(), /"msg":"worker died; starting another"/);
    } finally {
      es.itemFault = undefined;
      assert.equal(await cluster.stop(), 0, cluster.stderr());
    }
  });

  test('what workers acked is flushed when the supervisor is SIGKILLed, or the whole group gets SIGTERM', async () => {
    for (const how of ['SIGKILL to the supervisor', 'SIGTERM to the process group'] as const) {
      const index = how.startsWith('SIGKILL') ? 'orphaned' : 'group';
      const cluster = await startCluster(
        ({ forward }) => `  buffer: { flush_interval: 1h }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${forward} }
outputs:
  - { type: elasticsearch, id: es, hosts: ["${es.url}"], index: ${index} }
`,
        true,
      );
      try {
        await cluster.ready();
        await sendForward(cluster.ports.forward, 4, 10, (c, i) => ({ c, i }));
        assert.equal(es.documents(index).length, 0);
        const code = await (async () => {
          if (how.startsWith('SIGKILL')) {
            cluster.child.kill('SIGKILL');
            return null;
          }
          process.kill(-cluster.child.pid!, 'SIGTERM');
          return cluster.exited;
        })();
        if (code !== null) assert.equal(code, 0, cluster.stderr());
        await waitFor(() => es.documents(index).length === 40, {
          what: `every record after ${how}`,
          timeoutMs: 10_000,
        });
        assert.doesNotMatch(cluster.stderr(), /second signal/);
      } finally {
        try {
          process.kill(-cluster.child.pid!, 'SIGKILL');
        } catch {
          // The group is gone.
        }
      }
    }
  });

  test('SIGTERM while the workers start: they start, flush and exit 0', async () => {
    const cluster = await startCluster(
      ({ forward }) => `inputs:
  - { type: forward, listen: 127.0.0.1, port: ${forward} }
outputs:
  - { type: "null", id: nothing }
`,
    );
    await waitFor(() => cluster.stderr().includes('"msg":"worker started"'), { what: 'a first worker up' });
    cluster.child.kill('SIGTERM');
    assert.equal(await cluster.exited, 0, cluster.stderr());
  });

  test('a worker that cannot start stops the whole process with exit 1', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const cluster = await startCluster(
        () => `inputs:
  - { type: forward, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: "null", id: nothing }
`,
      );
      const code = await Promise.race([
        cluster.exited,
        new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000).unref()),
      ]);
      if (code === 'still running') cluster.child.kill('SIGKILL');
      assert.equal(code, 1, cluster.stderr());
      assert.match(cluster.stderr(), /EADDRINUSE/);
      assert.match(cluster.stderr(), /"msg":"worker failed to start"/);
    } finally {
      taken.close();
    }
  });
});
