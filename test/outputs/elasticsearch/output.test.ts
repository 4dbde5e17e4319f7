import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { HaltError, parseRetryAfter, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { elasticsearchOutput } from '../../../src/outputs/elasticsearch/index.ts';
import type { Output } from '../../../src/outputs/output.ts';
import { ElasticsearchFake, ITEM_429, mappingError } from '../../support/elasticsearch-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { assertAbandonedAtAbort } from '../../support/silent-server.ts';
import { selfSignedCert } from '../../support/tls.ts';
import { freePort } from '../../support/wait.ts';

const T = new EventTime(1_700_000_000, 123_456_789); // 2023-11-14T22:13:20.123456789Z

let fake: ElasticsearchFake;
let dir: string;
let outputs: Output[];
let logLines: Record<string, unknown>[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estuary-es-'));
});
after(() => rm(dir, { recursive: true, force: true }));
beforeEach(async () => {
  fake = await ElasticsearchFake.start();
  outputs = [];
  logLines = [];
});
afterEach(async () => {
  for (const o of outputs) await o.stop?.();
  await fake.stop();
});

function create(options: Record<string, unknown> = {}): Output {
  const sink = new Writable({
    write(line: Buffer, _enc, cb) {
      logLines.push(JSON.parse(line.toString()) as Record<string, unknown>);
      cb();
    },
  });
  const output = elasticsearchOutput.create(
    elasticsearchOutput.schema.parse({ hosts: [fake.url], ...options }),
    {
      id: 'es.0',
      logger: pino({ level: 'debug' }, sink),
      metrics: new Metrics(),
      configDir: dir,
    },
  );
  outputs.push(output);
  return output;
}

function records(n: number, make: (i: number) => Record<string, unknown> = (i) => ({ n: i })): Entry[] {
  return Array.from({ length: n }, (_, i) => ({ time: T, record: make(i) }));
}

const chunk = (entries: Entry[], tag = 'app.web', attempt = 0) =>
  makeChunk('c1', [makeBatch(tag, entries)], attempt);

describe('elasticsearch output: results, item by item', () => {
  it('indexes a chunk in one _bulk request with @timestamp to the nanosecond', async () => {
    const out = create();
    assert.equal(await out.write(chunk(records(3)), NO_DEADLINE), undefined);
    assert.equal(fake.bulkRequests.length, 1);
    assert.equal(fake.count(), 3);
    const doc = fake.documents('fluentd').find((d) => d.source.n === 1)!;
    assert.equal(doc.source['@timestamp'], '2023-11-14T22:13:20.123456789Z');
    assert.equal(fake.bulkRequests[0]!.headers['content-type'], 'application/x-ndjson');
    assert.equal(fake.bulkRequests[0]!.headers['x-elastic-product'], undefined);
  });

  it('retries only the items answered 429 or 5xx, rejects 400s with type and reason, counts 409 as done', async () => {
    const out = create();
    await out.write(chunk(records(1, () => ({ n: 'already there' }))), NO_DEADLINE);
    fake.itemFault = (a) => {
      const n = a.source?.n;
      if (n === 1) return ITEM_429;
      if (n === 2)
        return { status: 503, type: 'unavailable_shards_exception', reason: 'primary shard is not active' };
      if (n === 3) return mappingError('n', 'three');
      return undefined;
    };
    const entries = [...records(5), { time: T, record: { n: 'already there' } }];
    const result = await out.write(chunk(entries), NO_DEADLINE);
    assert.deepEqual(
      result!.retry!.map((e) => e.record.n),
      [1, 2],
    );
    assert.equal(result!.reject!.length, 1);
    assert.equal(result!.reject![0]!.entry.record.n, 3);
    assert.equal(
      result!.reject![0]!.reason,
      "document_parsing_exception: failed to parse field [n] of type [long] in document. Preview of field's value: '…'",
    );
    assert.deepEqual(
      fake
        .documents()
        .map((d) => d.source.n)
        .sort(),
      [0, 4, 'already there'].sort(),
    );
    const warn = logLines.find((l) => l.msg === 'cluster asked to retry some documents')!;
    assert.equal(warn.retry, 2);
    assert.match(String(warn.first_reason), /^es_rejected_execution_exception/);
  });

  it('splits a chunk into requests by bulk_max_actions and bulk_max_bytes', async () => {
    const out = create({ bulk_max_actions: 4 });
    await out.write(chunk(records(10)), NO_DEADLINE);
    assert.deepEqual(
      fake.bulkRequests.map((r) => r.actions),
      [4, 4, 2],
    );
    const bySize = create({ bulk_max_bytes: 1000 });
    await bySize.write(chunk(records(20, (i) => ({ n: i + 100, pad: 'p'.repeat(100) }))), NO_DEADLINE);
    const sizes = fake.bulkRequests.slice(3);
    assert.ok(sizes.length >= 4, `${sizes.length} requests`);
    for (const r of sizes) assert.ok(r.bytes <= 1000, `request of ${r.bytes} bytes`);
    assert.equal(fake.count(), 30);
  });

  it('on 413 splits the request in halves and sends them within the same write', async () => {
    const out = create();
    const entries = records(8, (i) => ({ n: i, pad: randomBytes(300).toString('base64') }));
    fake.maxBodyBytes = 2000; // each document ~500 bytes: 8 → 4 → 2 fit
    assert.equal(await out.write(chunk(entries), NO_DEADLINE), undefined);
    assert.equal(fake.count(), 8);
    assert.deepEqual(
      fake.bulkRequests.map((r) => [r.status, r.actions]),
      [
        [413, 8],
        [413, 4],
        [200, 2],
        [200, 2],
        [413, 4],
        [200, 2],
        [200, 2],
      ],
    );
  });

  it('rejects a single document the cluster finds too large; the others go through', async () => {
    const out = create();
    fake.maxBodyBytes = 1000;
    const entries = [
      { time: T, record: { n: 0 } },
      { time: T, record: { n: 1, pad: 'x'.repeat(2000) } },
    ];
    const result = await out.write(chunk(entries), NO_DEADLINE);
    assert.equal(result!.retry!.length, 0);
    assert.equal(result!.reject![0]!.entry.record.n, 1);
    assert.match(result!.reject![0]!.reason, /413 request entity too large.*one document of \d+ bytes/);
    assert.equal(fake.count(), 1);
  });

  it('401 and 403 halt the output (never dead-lettered), with a message that says what to fix', async () => {
    const out = create();
    fake.requestFaults.push({ status: 401 });
    await assert.rejects(out.write(chunk(records(2)), NO_DEADLINE), (err: unknown) => {
      assert.ok(err instanceof HaltError);
      assert.match(
        err.message,
        /401 unauthorized \(security_exception: .*\): .*check username\/password or api_key/,
      );
      return true;
    });
    fake.requestFaults.push({ status: 403 });
    await assert.rejects(
      out.write(chunk(records(2)), NO_DEADLINE),
      (err: Error) => err instanceof HaltError && /403 forbidden .*create_doc or index/.test(err.message),
    );
    assert.equal(fake.count(), 0);
  });

  it('a 403 for a cluster block (disk flood stage) is retried: the block lifts', async () => {
    const out = create();
    fake.requestFaults.push({
      status: 403,
      type: 'cluster_block_exception',
      reason: 'index [fluentd] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark]',
    });
    await assert.rejects(
      out.write(chunk(records(1)), NO_DEADLINE),
      (err: Error) => err instanceof RetryableError && /403 \(cluster_block_exception/.test(err.message),
    );
  });

  it('a 404 for the whole request (a missing index, a wrong path prefix) halts', async () => {
    const out = create();
    fake.requestFaults.push({
      status: 404,
      type: 'index_not_found_exception',
      reason: 'no such index [fluentd]',
    });
    await assert.rejects(
      out.write(chunk(records(1)), NO_DEADLINE),
      (err: Error) =>
        err instanceof HaltError &&
        /404 not found \(index_not_found_exception: no such index/.test(err.message),
    );
  });

  it('sends the credentials it is given (basic and ApiKey)', async () => {
    await fake.stop();
    fake = await ElasticsearchFake.start({ auth: { apiKey: 'aWQ6a2V5' } });
    assert.equal(await create({ api_key: 'aWQ6a2V5' }).write(chunk(records(1)), NO_DEADLINE), undefined);
    await assert.rejects(
      create({ username: 'elastic', password: 'x' }).write(chunk(records(1)), NO_DEADLINE),
      HaltError,
    );
  });

  it('429, 503 and connection errors are retryable; Retry-After is passed on', async () => {
    const out = create();
    fake.requestFaults.push({ status: 429, retryAfter: 3 });
    await assert.rejects(out.write(chunk(records(2)), NO_DEADLINE), (err: unknown) => {
      assert.ok(err instanceof RetryableError);
      assert.equal(err.retryAfterMs, 3000);
      assert.match(err.message, /429 \(es_rejected_execution_exception/);
      return true;
    });
    fake.requestFaults.push({ status: 503 });
    await assert.rejects(out.write(chunk(records(2)), NO_DEADLINE), RetryableError);
    const port = await freePort();
    const down = create({ hosts: [`http://127.0.0.1:${port}`] });
    await assert.rejects(down.write(chunk(records(1)), NO_DEADLINE), (err: unknown) => {
      assert.ok(err instanceof RetryableError);
      assert.match(err.message, /ECONNREFUSED/);
      return true;
    });
    const later = await ElasticsearchFake.start({ port });
    assert.equal(await down.write(chunk(records(1)), NO_DEADLINE), undefined, 'the node comes back');
    await later.stop();
    assert.equal(
      parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')),
      5000,
    );
  });

  it('a slow cluster times out after request_timeout, retryable', async () => {
    const out = create({ request_timeout: '100ms' });
    fake.delayMs = 1000;
    const started = Date.now();
    await assert.rejects(
      out.write(chunk(records(1)), NO_DEADLINE),
      /no answer within request_timeout \(100ms\)/,
    );
    assert.ok(Date.now() - started < 900);
  });

  it('a request failing as a whole after others went through: only what was not indexed comes back', async () => {
    const out = create({ bulk_max_actions: 2 });
    fake.requestFaults = [null, { status: 503 }];
    const result = await out.write(chunk(records(6)), NO_DEADLINE);
    assert.deepEqual(
      result!.retry!.map((e) => e.record.n),
      [2, 3, 4, 5],
    );
    assert.deepEqual(
      fake.bulkRequests.map((r) => r.status),
      [200, 503],
      'the third request is not sent',
    );
    // A halt keeps the whole chunk: the two documents indexed come back as 409s, counted done.
    fake.requestFaults = [null, { status: 401 }];
    await assert.rejects(out.write(chunk(records(6)), NO_DEADLINE), HaltError);
    assert.equal(await out.write(chunk(records(6)), NO_DEADLINE), undefined);
    assert.equal(fake.count(), 6);
  });

  it('a cluster that never answers is abandoned when the write’s signal aborts', async () => {
    await assertAbandonedAtAbort(
      (url, signal) => create({ hosts: [url] }).write(chunk(records(1)), { signal }),
      /_bulk: abandoned: /,
    );
  });
});

describe('elasticsearch output: connection options, flavors, templates, data streams', () => {
  it('gzips request bodies with compression: gzip, and sends extra headers', async () => {
    const out = create({ compression: 'gzip', headers: { 'x-tenant': 'shop' } });
    const entries = records(50, (i) => ({ n: i, msg: 'the same words again and again' }));
    assert.equal(await out.write(chunk(entries), NO_DEADLINE), undefined);
    const [req] = fake.bulkRequests;
    assert.equal(req!.headers['content-encoding'], 'gzip');
    assert.equal(req!.headers['x-tenant'], 'shop');
    assert.equal(fake.count(), 50);
    assert.ok(req!.bytes < 2000, `gzip body of ${req!.bytes} bytes`);
  });

  it('sends compatible-with media types only when compatibility_version is set', async () => {
    await create({ compatibility_version: 8 }).write(chunk(records(1)), NO_DEADLINE);
    const [req] = fake.bulkRequests;
    assert.equal(req!.headers['content-type'], 'application/vnd.elasticsearch+x-ndjson; compatible-with=8');
    assert.match(String(req!.headers.accept), /compatible-with=8/);
    assert.equal(fake.count(), 1);
  });

  it('flavor opensearch: no product check, plain media types; flavor elasticsearch refuses OpenSearch', async () => {
    await fake.stop();
    fake = await ElasticsearchFake.start({ flavor: 'opensearch' });
    assert.equal(await create({ flavor: 'opensearch' }).write(chunk(records(2)), NO_DEADLINE), undefined);
    assert.equal(fake.count(), 2);
    await assert.rejects(create().write(chunk(records(1)), NO_DEADLINE), (err: unknown) => {
      assert.ok(err instanceof HaltError);
      assert.match(err.message, /set flavor: opensearch for OpenSearch/);
      return true;
    });
    assert.equal(await create({ product_check: false }).write(chunk(records(1)), NO_DEADLINE), undefined);
  });

  it('installs the index template before the first write, once; keeps an existing one unless told', async () => {
    const file = join(dir, 'template.json');
    await writeFile(
      file,
      JSON.stringify({
        index_patterns: ['golang-app-metrics-*'],
        template: { mappings: { properties: {} } },
      }),
    );
    const out = create({ template_name: 'golang', template_file: 'template.json' });
    await out.start?.();
    assert.equal(fake.templates.size, 0, 'start contacts no node');
    await out.write(chunk(records(1)), NO_DEADLINE);
    await out.write(chunk(records(1)), NO_DEADLINE);
    assert.deepEqual(fake.templates.get('golang')!.index_patterns, ['golang-app-metrics-*']);
    const puts = () =>
      fake.requests.filter((r) => r.method === 'PUT' && r.path === '/_index_template/golang').length;
    assert.equal(puts(), 1);
    fake.templates.set('golang', { index_patterns: ['old-*'] });
    await create({ template_name: 'golang', template_file: 'template.json' }).write(
      chunk(records(1)),
      NO_DEADLINE,
    );
    assert.deepEqual(fake.templates.get('golang')!.index_patterns, ['old-*'], 'left as is');
    await create({ template_name: 'golang', template_file: file, template_overwrite: true }).write(
      chunk(records(1)),
      NO_DEADLINE,
    );
    assert.deepEqual(fake.templates.get('golang')!.index_patterns, ['golang-app-metrics-*'], 'overwritten');
    assert.ok(logLines.some((l) => l.msg === 'index template installed'));
  });

  it('a template that cannot be installed holds back the writes, and is tried again', async () => {
    await writeFile(join(dir, 'bad.json'), '{ not json');
    await assert.rejects(
      async () => create({ template_name: 't', template_file: 'bad.json' }).start?.(),
      /template_file .*bad.json is not JSON/,
    );
    await writeFile(join(dir, 'ok.json'), '{"index_patterns":["x-*"]}');
    const out = create({ template_name: 't', template_file: 'ok.json' });
    await fake.stop();
    await assert.rejects(out.write(chunk(records(1)), NO_DEADLINE), RetryableError);
    const port = fake.port;
    fake = await ElasticsearchFake.start({ port });
    await out.write(chunk(records(1)), NO_DEADLINE);
    assert.ok(fake.templates.has('t'));
    assert.equal(fake.count(), 1);
  });

  it('data_stream: create into the stream named by index, @timestamp set', async () => {
    fake.templates.set('logs', { index_patterns: ['logs-*-*'], data_stream: {} });
    const out = create({ data_stream: true, index: 'logs-${tag}-default', generate_id: false });
    assert.equal(await out.write(chunk(records(3), 'golang'), NO_DEADLINE), undefined);
    const docs = fake.documents('logs-golang-default');
    assert.equal(docs.length, 3);
    assert.ok(fake.isDataStream('logs-golang-default'));
    assert.equal(docs[0]!.source['@timestamp'], '2023-11-14T22:13:20.123456789Z');
  });

  it('trace_error logs the first failed item of a write with its action, document and answer', async () => {
    const out = create({ trace_error: true });
    fake.itemFault = (a) => (a.source!.n === 1 || a.source!.n === 2 ? mappingError('n', 'x') : undefined);
    await out.write(chunk(records(3)), NO_DEADLINE);
    const traced = logLines.filter((l) => l.msg === 'first failed bulk item (trace_error)');
    assert.equal(traced.length, 1);
    assert.equal(traced[0]!.status, 400);
    assert.match(String(traced[0]!.action), /^\{"create":\{"_index":"fluentd","_id":"/);
    assert.match(String(traced[0]!.document), /"n":1/);
    assert.equal((traced[0]!.error as { type: string }).type, 'document_parsing_exception');
    await create().write(chunk(records(3)), NO_DEADLINE);
    assert.equal(
      logLines.filter((l) => l.msg === 'first failed bulk item (trace_error)').length,
      1,
      'off by default',
    );
  });

  it('TLS: a missing file fails start naming its key; a certificate that does not verify halts', async () => {
    await assert.rejects(
      create({ hosts: ['https://127.0.0.1:9200'], tls: { ca_file: 'nope.pem' } }).start!(),
      (err: Error) => /^tls\.ca_file: cannot read .*nope\.pem/.test(err.message),
    );
    const { cert, key } = selfSignedCert(dir);
    const server = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (_req, res) =>
      res.end('{}'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await assert.rejects(
        create({ hosts: [`https://127.0.0.1:${port}`] }).write(chunk(records(1)), NO_DEADLINE),
        (err: Error) =>
          err instanceof HaltError && /self-signed certificate.*check ca_file/.test(err.message),
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('stop is safe without start and twice; a write after stop opens a new client', async () => {
    const out = create();
    await out.stop?.();
    await out.start?.();
    await out.stop?.();
    await out.stop?.();
    assert.equal(await out.write(chunk(records(1)), NO_DEADLINE), undefined);
  });
});
