import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { z } from 'zod';
import { Estuary } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load.ts';
import { makeBatch } from '../../src/core/batch.ts';
import type { Entry, TaggedEntry } from '../../src/core/entry.ts';
import { RejectError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { ComponentRegistry, defineComponent } from '../../src/registry.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';
import { sample } from '../support/prom-text.ts';
import { assertPromtoolAccepts } from '../support/promtool.ts';
import { waitFor } from '../support/wait.ts';

const TOKEN = 'admin-test-token';

/** Entries each `test_sink` output wrote, by output id. */
const received = new Map<string, TaggedEntry[]>();

const testSink = defineComponent({
  kind: 'output',
  type: 'test_sink',
  schema: z.strictObject({ fail: z.enum(['none', 'fatal']).default('none') }),
  create: (config, deps) => ({
    id: deps.id,
    type: 'test_sink',
    async write(chunk) {
      if (config.fail === 'fatal') throw new RejectError('test_sink refuses everything');
      received.set(deps.id, [...(received.get(deps.id) ?? []), ...chunk.entries()]);
      return undefined;
    },
  }),
});

const CONFIG = `
service:
  log_level: silent
  shutdown_timeout: 1s
  http: { auth_tokens: ["${TOKEN}"] }
  buffer: { flush_interval: 50ms, retry: { wait: 10ms, randomize: false } }
outputs:
  - { type: test_sink, id: good, match: "app.**" }
  - { type: test_sink, id: bad, match: "audit.**", fail: fatal }
`;

function makeEstuary(): Estuary {
  const registry = new ComponentRegistry().register(testSink);
  return new Estuary(loadConfig(CONFIG, 'test.yaml', registry), { registry, logger: silentLogger() });
}

function entries(n: number): Entry[] {
  return Array.from({ length: n }, (_, i) => ({
    time: new EventTime(1_700_000_000 + i, 123_456_789),
    record: { msg: `hello ${i}`, n: i },
  }));
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe('admin server on a running Estuary', () => {
  let estuary: Estuary;
  let admin: AdminServer;
  let base: string;
  const logLines: string[] = [];

  const http = (path: string, init: RequestInit = {}) => fetch(`${base}${path}`, init);
  const metrics = async () => (await http('/metrics')).text();
  const dlq = async (output: string) => {
    const res = await http(`/api/v1/outputs/${output}/dead-letter`);
    assert.equal(res.status, 200);
    return (await res.json()) as { output: string; chunks: { id: string; reason: string; count: number }[] };
  };

  /** The dead-letter list of `bad` once it holds exactly one chunk, optionally not `except`. */
  const oneDeadChunk = (except?: string) =>
    waitFor(
      async () => {
        const listed = await dlq('bad');
        return listed.chunks.length === 1 && listed.chunks[0]!.id !== except ? listed : undefined;
      },
      { what: 'one dead-letter chunk' },
    );

  before(async () => {
    estuary = makeEstuary();
    await estuary.start();
    const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
    admin = new AdminServer(
      adminTarget(estuary),
      { listen: '127.0.0.1', port: 0, authTokens: [TOKEN] },
      logger,
    );
    await admin.start();
    base = `http://127.0.0.1:${admin.port}`;
  });

  after(async () => {
    await admin.stop();
    await estuary.stop();
  });

  test('logs its address once at start', () => {
    assert.equal(logLines.length, 1);
    const line = JSON.parse(logLines[0]!) as { address: string; msg: string };
    assert.equal(line.address, base);
    assert.equal(admin.address().port, admin.port);
    assert.notEqual(admin.port, 0);
  });

  test('/healthz and /readyz answer 200', async () => {
    const health = await http('/healthz');
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
    const ready = await http('/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true });
  });

  test('the output counters move when records flow', async () => {
    await estuary.pipeline.emit(makeBatch('app.web', entries(5)), { wait: false });
    await waitFor(() => received.get('good')?.length === 5, { what: '5 records at the good output' });
    const res = await http('/metrics');
    assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await res.text();
    const good = { plugin_id: 'good', type: 'test_sink' };
    // Delivered is counted just after write returns; the scrape can land in between.
    await waitFor(
      async () => sample(await metrics(), 'estuary_output_records_delivered_total', good).value === 5,
      { what: 'delivered counter at 5' },
    );
    assert.equal(sample(text, 'fluentd_output_status_emit_records', good).value, 5);
    assert.ok(sample(text, 'fluentd_output_status_write_count', good).value >= 1);
    assert.equal(sample(text, 'fluentd_output_status_buffer_queue_length', good).labels.type, 'test_sink');
    assert.equal(sample(text, 'fluentd_output_status_num_errors', good).value, 0);
  });

  test('a failing output dead-letters; the API lists, shows, replays and purges', async () => {
    const bad = { plugin_id: 'bad', type: 'test_sink' };
    await estuary.pipeline.emit(makeBatch('audit.login', entries(3)), { wait: false });
    const listed = await oneDeadChunk();
    const chunk = listed.chunks[0]!;
    assert.equal(listed.output, 'bad');
    assert.equal(chunk.count, 3);
    assert.match(chunk.reason, /test_sink refuses everything/);

    const text = await metrics();
    assert.ok(sample(text, 'fluentd_output_status_num_errors', bad).value >= 1);
    assert.equal(sample(text, 'estuary_dead_letter_chunks', bad).value, 1);
    assert.equal(sample(text, 'estuary_dead_letter_records', bad).value, 3);

    const path = `/api/v1/outputs/bad/dead-letter/${chunk.id}`;
    assert.equal((await http(path)).status, 401, 'show reveals records: token required');
    const shown = await http(path, { headers: auth });
    assert.equal(shown.status, 200);
    const body = (await shown.json()) as {
      id: string;
      entries: { time: string; tag: string; record: unknown }[];
    };
    assert.equal(body.id, chunk.id);
    assert.deepEqual(body.entries[0], {
      time: '2023-11-14T22:13:20.123456789Z',
      tag: 'audit.login',
      record: { msg: 'hello 0', n: 0 },
    });
    assert.equal(body.entries.length, 3);

    const noToken = await http(`${path}/replay`, { method: 'POST' });
    assert.equal(noToken.status, 401);
    assert.match(noToken.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrongToken = await http(`${path}/replay`, {
      method: 'POST',
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(wrongToken.status, 401);
    assert.equal((await dlq('bad')).chunks[0]?.id, chunk.id, 'refused replay leaves the chunk');

    const replayed = await http(`${path}/replay`, { method: 'POST', headers: auth });
    assert.equal(replayed.status, 200);
    assert.deepEqual(await replayed.json(), { replayed: chunk.id });
    // The output still fails, so the records come back as a new dead-letter chunk.
    const again = await oneDeadChunk(chunk.id);
    assert.equal(again.chunks[0]!.count, 3);
    assert.equal((await http(path, { method: 'DELETE', headers: auth })).status, 404, 'old id is gone');

    const purged = await http('/api/v1/outputs/bad/dead-letter', { method: 'DELETE', headers: auth });
    assert.equal(purged.status, 200);
    assert.deepEqual(await purged.json(), { removed: 1 });
    assert.deepEqual((await dlq('bad')).chunks, []);
  });

  test('one chunk can be deleted', async () => {
    await estuary.pipeline.emit(makeBatch('audit.login', entries(1)), { wait: false });
    const { chunks } = await oneDeadChunk();
    const path = `/api/v1/outputs/bad/dead-letter/${chunks[0]!.id}`;
    assert.equal((await http(path, { method: 'DELETE' })).status, 401);
    const res = await http(path, { method: 'DELETE', headers: auth });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { removed: 1 });
    assert.deepEqual((await dlq('bad')).chunks, []);
  });

  test('unknown outputs and chunks are 404', async () => {
    assert.equal((await http('/api/v1/outputs/nope/dead-letter')).status, 404);
    assert.equal((await http('/api/v1/outputs/nope/dead-letter/x', { headers: auth })).status, 404);
    assert.equal((await http('/api/v1/outputs/bad/dead-letter/x', { headers: auth })).status, 404);
    const replay = await http('/api/v1/outputs/bad/dead-letter/x/replay', { method: 'POST', headers: auth });
    assert.equal(replay.status, 404);
    assert.match(((await replay.json()) as { error: string }).error, /no dead-letter chunk "x"/);
    const purge = await http('/api/v1/outputs/nope/dead-letter', { method: 'DELETE', headers: auth });
    assert.equal(purge.status, 404);
  });

  test('promtool check metrics accepts /metrics', async () => {
    await assertPromtoolAccepts(await metrics());
  });

  test('/api/v1/status has every output and its buffer stats', async () => {
    const res = await http('/api/v1/status');
    assert.equal(res.status, 200);
    const status = (await res.json()) as {
      ready: boolean;
      buffer: { type: string; reachable: boolean };
      outputs: { id: string; type: string; buffer: { emitRecords: number; queueLength: number } }[];
    };
    assert.equal(status.ready, true);
    assert.deepEqual(status.buffer, { type: 'memory', reachable: true });
    assert.deepEqual(
      status.outputs.map((o) => o.id),
      ['good', 'bad'],
    );
    const good = status.outputs.find((o) => o.id === 'good')!;
    assert.equal(good.type, 'test_sink');
    assert.equal(good.buffer.emitRecords, 5);
    assert.equal(good.buffer.queueLength, 0);
  });
});

describe('admin server edge cases', () => {
  let estuary: Estuary;
  before(async () => {
    estuary = makeEstuary();
    await estuary.start();
  });
  after(() => estuary.stop());

  test('without auth_tokens the mutating and show routes answer 403 and say what to set', async () => {
    const admin = new AdminServer(
      adminTarget(estuary),
      { listen: '127.0.0.1', port: 0, authTokens: [] },
      silentLogger(),
    );
    await admin.start();
    try {
      const base = `http://127.0.0.1:${admin.port}/api/v1/outputs/bad/dead-letter`;
      for (const [path, method] of [
        ['/x/replay', 'POST'],
        ['/x', 'DELETE'],
        ['', 'DELETE'],
        ['/x', 'GET'],
      ] as const) {
        const res = await fetch(`${base}${path}`, { method, headers: auth });
        assert.equal(res.status, 403, `${method} ${path}`);
        assert.match(((await res.json()) as { error: string }).error, /service\.http\.auth_tokens/);
      }
      assert.equal((await fetch(base)).status, 200, 'listing stays open');
    } finally {
      await admin.stop();
    }
  });

  test('/readyz is 503 with the reason when something is not ready', async () => {
    const status = estuary.status();
    const target = adminTarget({
      metrics: estuary.metrics,
      buffer: (id) => estuary.buffer(id),
      ready: () => false,
      status: () => ({ ...status, ready: false, inputs: [{ id: 'fwd', type: 'forward', ready: false }] }),
    });
    const admin = new AdminServer(target, { listen: '127.0.0.1', port: 0, authTokens: [] }, silentLogger());
    await admin.start();
    try {
      const res = await fetch(`http://127.0.0.1:${admin.port}/readyz`);
      assert.equal(res.status, 503);
      assert.deepEqual(await res.json(), { ready: false, inputs_not_ready: ['fwd'], buffer: 'memory' });
    } finally {
      await admin.stop();
    }
  });

  test('stop is safe twice, and without start', async () => {
    const admin = new AdminServer(
      adminTarget(estuary),
      { listen: '127.0.0.1', port: 0, authTokens: [] },
      silentLogger(),
    );
    await admin.start();
    const port = admin.port;
    await admin.stop();
    await admin.stop();
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
    assert.throws(() => admin.port, /not listening/);

    const never = new AdminServer(
      adminTarget(estuary),
      { listen: '127.0.0.1', port: 0, authTokens: [] },
      silentLogger(),
    );
    await never.stop();
    await never.stop();
  });
});
