import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import type { OutputBuffer } from '../../../src/buffer/buffer.ts';
import { MemoryBackend } from '../../../src/buffer/memory/memory-store.ts';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfigFile } from '../../../src/config/load.ts';
import { resolveBufferSettings } from '../../../src/config/schema.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { elasticsearchOutput } from '../../../src/outputs/elasticsearch/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { ElasticsearchFake, ITEM_429 } from '../../support/elasticsearch-fake.ts';
import { startEstuary } from '../../support/estuary.ts';
import { postJson } from '../../support/http.ts';
import { emitTo, NO_DEADLINE } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * The output behind the real buffer: what the buffer retries, what it dead-letters, and what
 * ends up in the cluster, counted document by document.
 */
let fake: ElasticsearchFake;
let open: { buffer: OutputBuffer; output: Output }[];

beforeEach(async () => {
  fake = await ElasticsearchFake.start();
  open = [];
});
afterEach(async () => {
  for (const { buffer, output } of open) {
    await buffer.stop(Date.now());
    await output.stop?.();
  }
  await fake.stop();
});

interface Attempt {
  attempt: number;
  count: number;
}

async function setup(options: Record<string, unknown> = {}) {
  const output = elasticsearchOutput.create(
    elasticsearchOutput.schema.parse({ hosts: [fake.url], ...options }),
    {
      id: 'es',
      logger: silentLogger(),
      metrics: new Metrics(),
      configDir: '.',
    },
  );
  const attempts: Attempt[] = [];
  const write = output.write.bind(output);
  output.write = (chunk: Chunk) => {
    attempts.push({ attempt: chunk.attempt, count: chunk.count });
    return write(chunk, NO_DEADLINE);
  };
  const settings = resolveBufferSettings({
    flush_interval: 10,
    retry: { wait: 5, randomize: false, exponential_backoff_base: 1.5, max_interval: 50 },
  });
  const buffer = new MemoryBackend().create(output, settings, {
    logger: silentLogger(),
    metrics: new Metrics(),
  });
  await output.start?.();
  await buffer.start();
  open.push({ buffer, output });
  const emit = async (n: number, make: (i: number) => Record<string, unknown> = (i) => ({ n: i })) => {
    const batch = makeBatch(
      'app.golang',
      Array.from({ length: n }, (_, i) => ({ time: new EventTime(1_700_000_000 + i, i), record: make(i) })),
    );
    await emitTo(buffer, batch);
  };
  return { buffer, attempts, emit };
}

const ns = () => fake.documents().map((d) => d.source.n as number);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('elasticsearch output behind the buffer', () => {
  it('retries only the documents the cluster answered 429, until each is indexed once', async () => {
    const { attempts, emit } = await setup();
    fake.itemFault = (a) => ((a.source!.n as number) % 3 === 0 && a.attempt <= 2 ? ITEM_429 : undefined);
    await emit(12);
    await waitFor(() => fake.count() === 12, { what: '12 documents' });
    await waitFor(() => attempts.length === 3);
    assert.deepEqual(
      attempts.map((a) => a.count),
      [12, 4, 4],
      'first the chunk, then only the four 429s, twice',
    );
    assert.deepEqual(
      fake.bulkRequests.map((r) => r.actions),
      [12, 4, 4],
    );
    assert.deepEqual(sorted(ns()), range(12));
  });

  it('sends rejected documents to the dead-letter queue with the cluster’s reason, and never retries them', async () => {
    const { buffer, attempts, emit } = await setup();
    await emit(1, () => ({ n: 0, duration_ms: 12.5 })); // maps duration_ms as a number
    await waitFor(() => fake.count() === 1);
    await emit(4, (i) => ({ n: i + 1, duration_ms: i % 2 === 0 ? 'slow' : 30 }));
    await waitFor(async () => (await buffer.deadLetter.list()).length === 1, { what: 'a dead-letter chunk' });
    const [dead] = await buffer.deadLetter.list();
    // One chunk for one cause: the values and document ids that differ are left out of the reason.
    assert.equal(
      dead!.reason,
      "document_parsing_exception: failed to parse field [duration_ms] of type [float] in document with id '…'. Preview of field's value: '…' (caused by illegal_argument_exception: For input string: \"…\")",
    );
    const shown = await buffer.deadLetter.show(dead!.id);
    assert.deepEqual(
      shown!.entries.map((e) => [e.record.n, e.record.duration_ms]),
      [
        [1, 'slow'],
        [3, 'slow'],
      ],
    );
    assert.deepEqual(sorted(ns()), [0, 2, 4]);
    assert.equal(attempts.length, 2, 'one write per chunk: nothing retried');
    assert.equal(buffer.stats().deadLetterRecords, 2);
  });

  it('a chunk retried 5 times — each time indexed, then the answer lost — yields one document per record', async () => {
    const { attempts, emit } = await setup();
    fake.requestFaults = [
      { status: 503, afterIndexing: true },
      { status: 429, afterIndexing: true, retryAfter: 0 },
      { status: 502, afterIndexing: true },
      { status: 504, afterIndexing: true },
      { status: 500, afterIndexing: true },
    ];
    await emit(20);
    await waitFor(() => attempts.length === 6 && fake.bulkRequests.at(-1)!.status === 200, {
      what: 'the sixth write',
    });
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [0, 1, 2, 3, 4, 5],
    );
    assert.equal(fake.count(), 20);
    assert.deepEqual(sorted(ns()), range(20));
  });

  it('the same records sent twice (an agent re-sending after a lost ack) stay one document each', async () => {
    const { emit, buffer } = await setup();
    await emit(5);
    await waitFor(() => fake.count() === 5);
    await emit(5);
    await waitFor(() => fake.bulkRequests.length === 2);
    await waitFor(() => buffer.stats().queueLength === 0);
    assert.equal(fake.count(), 5);
  });
});

describe('elasticsearch output end to end (HTTP in, Elasticsearch fake out)', async () => {
  const es = await ElasticsearchFake.start();
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms, retry: { wait: 10ms, randomize: false } }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: elasticsearch
    id: es
    match: "app.**"
    hosts: ["${es.url}"]
    logstash_format: true
    logstash_prefix: golang-app-metrics
    compression: gzip
`);
  after(async () => {
    await e.stop();
    await es.stop();
  });
  const post = (tag: string, body: unknown) => postJson(port, tag, body);

  it('indexes Go app metrics by each record’s own day, numbers as numbers, @timestamp to the nanosecond', async () => {
    const lines = [
      {
        time: '2026-11-20T23:59:59.987654321Z',
        level: 'info',
        msg: 'request completed',
        duration_ms: 12.5,
        status: 200,
      },
      {
        time: '2026-11-21T00:00:00.000000001Z',
        level: 'info',
        msg: 'request completed',
        duration_ms: 7,
        status: 200,
      },
      { time: 1_700_000_000.25, level: 'warn', msg: 'slow', duration_ms: 950.25, status: 200 },
    ];
    assert.equal((await post('app.golang', lines)).status, 200);
    await waitFor(() => es.count() === 3, { what: '3 documents' });
    assert.deepEqual(es.indices(), [
      'golang-app-metrics-2023.11.14',
      'golang-app-metrics-2026.11.20',
      'golang-app-metrics-2026.11.21',
    ]);
    const [late] = es.documents('golang-app-metrics-2026.11.20');
    assert.equal(late!.source['@timestamp'], '2026-11-20T23:59:59.987654321Z');
    assert.equal(late!.source.duration_ms, 12.5);
    assert.equal(typeof late!.source.status, 'number');
    assert.equal(
      es.documents('golang-app-metrics-2026.11.21')[0]!.source['@timestamp'],
      '2026-11-21T00:00:00.000000001Z',
    );
    assert.equal(es.bulkRequests[0]!.headers['content-encoding'], 'gzip');
    const text = await e.metrics();
    const labels = { plugin_id: 'es', type: 'elasticsearch' };
    assert.equal(sample(text, 'estuary_output_records_delivered_total', labels).value, 3);
  });

  it('a 401 halts the output: the chunk is kept, never dead-lettered, and indexed once the cluster takes it', async () => {
    const before = es.count();
    es.requestFaults.push({ status: 401 }, { status: 401 });
    assert.equal((await post('app.golang', { msg: 'x', time: 1_800_000_000 })).status, 200);
    await waitFor(() => es.count() === before + 1, {
      what: 'the document, after the credentials work again',
    });
    assert.deepEqual(
      es.bulkRequests.slice(-3).map((r) => r.status),
      [401, 401, 200],
    );
    assert.deepEqual(await e.app.buffer('es')!.deadLetter.list(), []);
  });

  it('the shipped example config loads: logstash_format, prefix golang-app-metrics', () => {
    const config = loadConfigFile('config/examples/elasticsearch.yaml', builtinRegistry(), {
      ESTUARY_HTTP_TOKEN: 't',
      ES_API_KEY: 'k',
    });
    const out = config.outputs.find((o) => o.type === 'elasticsearch')!;
    const options = out.options as { logstash_format: boolean; logstash_prefix: string };
    assert.equal(options.logstash_format, true);
    assert.equal(options.logstash_prefix, 'golang-app-metrics');
  });
});
