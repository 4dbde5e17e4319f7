import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { Estuary } from '../../../src/app.ts';
import type { OutputBuffer } from '../../../src/buffer/buffer.ts';
import { MemoryBackend } from '../../../src/buffer/memory/memory-store.ts';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { resolveBufferSettings } from '../../../src/config/schema.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { pack, unpack } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { lokiOutput } from '../../../src/outputs/loki/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { postJson } from '../../support/http.ts';
import { LokiFake } from '../../support/loki-fake.ts';
import { emitTo, NO_DEADLINE } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * The output behind the real buffer and inside a running Estuary: what is retried, what is
 * dead-lettered, and what ends up in Loki.
 */
const now = () => Math.floor(Date.now() / 1000);

describe('loki output behind the memory buffer', () => {
  let fake: LokiFake;
  let open: { buffer: OutputBuffer; output: Output }[];
  beforeEach(async () => {
    fake = await LokiFake.start();
    open = [];
  });
  afterEach(async () => {
    for (const { buffer, output } of open) {
      await buffer.stop(Date.now());
      await output.stop?.();
    }
    await fake.stop();
  });

  async function setup(options: Record<string, unknown> = {}) {
    const output = lokiOutput.create(lokiOutput.schema.parse({ url: fake.url, ...options }), {
      id: 'loki',
      logger: silentLogger(),
      metrics: new Metrics(),
      configDir: '.',
    });
    const attempts: { attempt: number; count: number; at: number }[] = [];
    const write = output.write.bind(output);
    output.write = (chunk: Chunk) => {
      attempts.push({ attempt: chunk.attempt, count: chunk.count, at: Date.now() });
      return write(chunk, NO_DEADLINE);
    };
    const settings = resolveBufferSettings({
      flush_interval: 10,
      retry: { wait: 5, randomize: false, exponential_backoff_base: 1.5, max_interval: 2000 },
    });
    const buffer = new MemoryBackend().create(output, settings, {
      logger: silentLogger(),
      metrics: new Metrics(),
    });
    await output.start?.();
    await buffer.start();
    open.push({ buffer, output });
    const emit = async (records: Record<string, unknown>[], sec = now() - 30) => {
      const batch = makeBatch(
        'app.web',
        records.map((record, i) => ({ time: new EventTime(sec, i), record })),
      );
      await emitTo(buffer, batch);
    };
    return { buffer, attempts, emit };
  }

  it('429: the chunk waits Loki’s Retry-After, is sent again, and is stored once', async () => {
    const { attempts, emit } = await setup();
    fake.faults = [{ status: 429, retryAfter: 1 }];
    await emit([{ n: 1 }, { n: 2 }, { n: 3 }]);
    await waitFor(() => fake.count() === 3, { what: '3 entries in Loki' });
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [0, 1],
    );
    const waited = attempts[1]!.at - attempts[0]!.at;
    assert.ok(waited >= 900, `retried after ${waited}ms, not after Retry-After: 1`);
    assert.deepEqual(
      fake.pushes.map((p) => p.status),
      [429, 204],
    );
  });

  it('a 5xx after Loki stored the entries: the retry is ignored by Loki as duplicates', async () => {
    const { attempts, emit } = await setup();
    fake.faults = [{ status: 500, afterStoring: true }];
    await emit([{ n: 1 }, { n: 2 }]);
    await waitFor(() => attempts.length === 2 && fake.pushes.at(-1)!.status === 204, { what: 'the retry' });
    assert.equal(fake.count(), 2);
  });

  it('400: the request’s entries go to the dead-letter queue with Loki’s message, never retried', async () => {
    const { buffer, attempts, emit } = await setup({ label_keys: 'app' });
    // Three chunks, one after the other. Stream "late" gets an entry of now first: Loki
    // measures "too far behind" from a stream's newest entry.
    await emit([
      { app: 'ok', msg: 'fine' },
      { app: 'late', msg: 'on time' },
    ]);
    await waitFor(() => attempts.length === 1);
    await emit([
      { app: 'web', msg: 'y'.repeat(257 * 1024) },
      { app: 'web', msg: 'short' },
    ]);
    await waitFor(() => attempts.length === 2);
    await emit([{ app: 'late', msg: 'from three hours ago' }], now() - 3 * 3600);
    await waitFor(async () => (await buffer.deadLetter.list()).length === 2, {
      what: 'two dead-letter chunks',
    });
    const dead = await buffer.deadLetter.list();
    const reasons = dead.map((d) => d.reason).sort();
    assert.match(
      reasons[0]!,
      /^Loki refused the entries \(400\): Max entry size '262144' bytes exceeded for stream '\{app="web", job="fluent-bit"\}' while adding an entry with length '263178' bytes$/,
    );
    assert.match(
      reasons[1]!,
      /^Loki refused the entries \(400\): entry with timestamp .* ignored, reason: 'entry too far behind, entry timestamp is: .*',\nuser 'fake', total ignored: 1 out of 1 for stream: \{app="late", job="fluent-bit"\}$/,
    );
    const web = dead.find((d) => d.reason.includes('Max entry size'))!;
    assert.equal(web.count, 2, 'the whole request, the short line too');
    const shown = await buffer.deadLetter.show(web.id);
    assert.deepEqual(
      shown!.entries.map((e) => e.record.msg).map((m) => String(m).length),
      [257 * 1024, 5],
    );
    assert.deepEqual(
      fake.lines().sort(),
      ['{"msg":"fine"}', '{"msg":"on time"}', '{"msg":"short"}'],
      'Loki kept what it could',
    );
    assert.equal(attempts.length, 3, 'one write per chunk: nothing retried');
  });

  it('401: the output halts and keeps the chunk (never dead-lettered) until Loki takes it', async () => {
    const { buffer, attempts, emit } = await setup();
    fake.faults = [{ status: 401 }, { status: 401 }];
    await emit([{ n: 1 }]);
    await waitFor(() => fake.count() === 1, { what: 'the entry, once the credentials work again' });
    assert.deepEqual(
      fake.pushes.map((p) => p.status),
      [401, 401, 204],
    );
    assert.equal(attempts.length, 3);
    assert.deepEqual(await buffer.deadLetter.list(), []);
  });
});

/** A whole Estuary from YAML, its own log lines kept (with the plugin_id of each). */
async function startEstuary(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const registry = builtinRegistry();
  const app = await Estuary.create(loadConfig(yaml, 'test.yaml', registry, env), { registry, logger });
  await app.start();
  return { app, logs, metrics: () => app.metrics.render(), stop: () => app.stop() };
}

describe('loki end to end: HTTP in, two Loki outputs side by side', () => {
  let fake: LokiFake;
  let e: Awaited<ReturnType<typeof startEstuary>>;
  let port: number;
  before(async () => {
    fake = await LokiFake.start({ multiTenant: true });
    port = await freePort();
    e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms, retry: { wait: 10ms, randomize: false, max_interval: 50ms } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: loki
    id: loki-team-a
    match: "app.**"
    url: ${fake.url}
    tenant_id: team-a
    labels: '{job="shop", env="prod"}'
    label_keys: [level]
    max_label_values: 2
  - type: loki
    id: loki-team-b
    match: "app.**"
    url: ${fake.url}
    tenant_id: team-b
    encoding: json
    labels: "job=audit, $service"
    include_tag: true
`);
  });
  after(async () => {
    await e.stop();
    await fake.stop();
  });
  const post = (tag: string, body: unknown) => postJson(port, tag, body);

  it('each output writes its own tenant and labels; a 429 for one tenant is retried for that one', async () => {
    fake.faults = [{ status: 429, retryAfter: 0 }];
    const lines = ['info', 'warn', 'error', 'debug'].map((level, i) => ({
      level,
      service: 'checkout',
      msg: `m${i}`,
    }));
    assert.equal((await post('app.checkout', lines)).status, 200);
    await waitFor(() => fake.count('team-a') === 4 && fake.count('team-b') === 4, {
      what: '4 entries per tenant',
    });
    assert.deepEqual(
      fake
        .streams('team-a')
        .map((s) => s.key)
        .sort(),
      [
        '{env="prod", job="shop", level="info"}',
        '{env="prod", job="shop", level="warn"}',
        '{env="prod", job="shop"}',
      ],
    );
    assert.deepEqual(
      fake.streams('team-b').map((s) => s.key),
      ['{job="audit", service="checkout", tag="app.checkout"}'],
    );
    assert.equal(fake.pushes.filter((p) => p.status === 429).length, 1);
    assert.deepEqual(
      new Set(fake.pushes.map((p) => `${p.tenant} ${p.encoding}`)),
      new Set(['team-a protobuf', 'team-b json']),
    );

    // Loki stores before it answers: the writes may still be finishing.
    const delivered = (text: string, id: string) =>
      sample(text, 'estuary_output_records_delivered_total', { plugin_id: id, type: 'loki' }).value;
    const text = await waitFor(
      async () => {
        const t = await e.metrics();
        return delivered(t, 'loki-team-a') === 4 && delivered(t, 'loki-team-b') === 4 ? t : undefined;
      },
      { what: 'both writes counted as delivered' },
    );
    const retried = ['loki-team-a', 'loki-team-b'].map(
      (id) => sample(text, 'fluentd_output_status_retry_count', { plugin_id: id }).value,
    );
    assert.deepEqual(retried.sort(), [0, 1], 'only the output that got the 429 retried');
    assert.equal(
      sample(text, 'estuary_loki_labels_demoted_total', { plugin_id: 'loki-team-a', label: 'level' }).value,
      2,
    );
    assert.throws(() => sample(text, 'estuary_loki_labels_demoted_total', { plugin_id: 'loki-team-b' }));

    const warning = e.logs.find((l) => l.label === 'level');
    assert.equal(warning?.plugin_id, 'loki-team-a');
    const retryLog = e.logs.find((l) => typeof l.err === 'string' && l.err.includes('429'));
    assert.ok(retryLog, 'the retry is logged');
    assert.match(String(retryLog.plugin_id), /^loki-team-[ab]$/);
  });
});

describe('loki example: Fluent Bit cpu input → forward → Estuary → Loki', () => {
  it('config/examples/loki.yaml ships records tagged my_cpu as {test="fluent-bit-go", tag="my_cpu"}', async () => {
    const fake = await LokiFake.start();
    const forwardPort = await freePort();
    const yaml = readFileSync('config/examples/loki.yaml', 'utf8').replace(
      /port: 24224\b/,
      `port: ${forwardPort}`,
    );
    const e = await startEstuary(yaml, { LOKI_URL: fake.url });
    try {
      // What Fluent Bit's forward output sends with Require_ack_response: PackedForward with a chunk id.
      const cpu = {
        cpu_p: 1.5,
        user_p: 1,
        system_p: 0.5,
        'cpu0.p_cpu': 2,
        'cpu0.p_user': 1,
        'cpu0.p_system': 1,
      };
      const entries = makeBatch('my_cpu', [
        { time: new EventTime(now() - 2, 1), record: cpu },
        { time: new EventTime(now() - 1, 2), record: { ...cpu, cpu_p: 3 } },
      ]);
      const socket = connect(forwardPort, '127.0.0.1');
      const ack = new Promise<unknown>((resolve, reject) => {
        socket.once('data', (d: Buffer) => resolve(unpack(d)));
        socket.once('error', reject);
      });
      socket.write(pack(['my_cpu', entries.payload, { size: 2, chunk: 'cpu-chunk-1' }]));
      assert.deepEqual(await ack, { ack: 'cpu-chunk-1' });
      socket.end();
      await waitFor(() => fake.count() === 2, { what: 'the cpu records in Loki' });
      const stream = fake.stream({ test: 'fluent-bit-go', tag: 'my_cpu' });
      assert.ok(stream, `streams: ${fake.streams().map((s) => s.key)}`);
      assert.deepEqual(JSON.parse(stream.entries[1]!.line), { ...cpu, cpu_p: 3 });
    } finally {
      await e.stop();
      await fake.stop();
    }
  });
});
