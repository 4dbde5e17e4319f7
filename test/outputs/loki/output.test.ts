import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { HaltError, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { lokiOutput } from '../../../src/outputs/loki/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { LokiFake, type LokiFakeOptions } from '../../support/loki-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { sample } from '../../support/prom-text.ts';
import { assertAbandonedAtAbort, SilentServer } from '../../support/silent-server.ts';
import { selfSignedCert } from '../../support/tls.ts';

/** The output against the Loki fake, one write at a time: what Loki stores, and what write() says. */
let fake: LokiFake;
let dir: string;
let outputs: Output[];
let logLines: Record<string, unknown>[];
let metrics: Metrics;

const K8S_RECORD = JSON.parse(
  await readFile(new URL('testdata/kubernetes-record.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'estuary-loki-'));
});
after(() => rm(dir, { recursive: true, force: true }));
beforeEach(async () => {
  fake = await LokiFake.start();
  outputs = [];
  logLines = [];
  metrics = new Metrics();
});
afterEach(async () => {
  for (const o of outputs) await o.stop?.();
  await fake.stop();
});

async function restartFake(options: LokiFakeOptions): Promise<void> {
  await fake.stop();
  fake = await LokiFake.start(options);
}

function create(options: Record<string, unknown> = {}, id = 'loki.0'): Output {
  const sink = new Writable({
    write(line: Buffer, _enc, cb) {
      logLines.push(JSON.parse(line.toString()) as Record<string, unknown>);
      cb();
    },
  });
  const output = lokiOutput.create(lokiOutput.schema.parse({ url: fake.url, ...options }), {
    id,
    logger: pino({ level: 'debug' }, sink).child({ plugin_id: id }),
    metrics,
    configDir: dir,
  });
  outputs.push(output);
  return output;
}

/** A minute ago, whole seconds: recent enough for Loki. */
const BASE = Math.floor(Date.now() / 1000) - 60;
const at = (offsetSec: number, nsec = 0) => new EventTime(BASE + offsetSec, nsec);
const records = (n: number, make: (i: number) => Record<string, unknown> = (i) => ({ n: i })): Entry[] =>
  Array.from({ length: n }, (_, i) => ({ time: at(0, i), record: make(i) }));
const chunk = (entries: Entry[], tag = 'app.web'): Chunk => makeChunk('c1', [makeBatch(tag, entries)], 0);
const ns = (t: EventTime) => BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);

describe('loki output: streams and lines', () => {
  it('labels from every source, line without them, structured metadata beside it', async () => {
    const mapFile = join(dir, 'labels.json');
    await writeFile(
      mapFile,
      JSON.stringify({ kubernetes: { labels: { 'app.kubernetes.io/part-of': 'system' } } }),
    );
    const out = create({
      labels: '{job="fluent-bit", cluster="eu-1"}',
      label_keys: ['stream'],
      label_map_path: 'labels.json',
      auto_kubernetes_labels: true,
      include_tag: true,
      structured_metadata: ['time'],
      remove_keys: ['kubernetes'],
    });
    await out.start?.();
    const entry = { time: at(0, 123_456_789), record: K8S_RECORD };
    assert.equal(await out.write(chunk([entry], 'kube.var.log.containers.checkout'), NO_DEADLINE), undefined);
    assert.equal(fake.pushes.length, 1);
    assert.equal(fake.pushes[0]!.encoding, 'protobuf');
    assert.equal(fake.pushes[0]!.headers['content-type'], 'application/x-protobuf');
    const [stream] = fake.streams();
    assert.deepEqual(stream!.labels, {
      app: 'checkout',
      app_kubernetes_io_name: 'checkout',
      app_kubernetes_io_part_of: 'shop',
      cluster: 'eu-1',
      container: 'checkout',
      host: 'ip-10-0-1-23.eu-west-1.compute.internal',
      job: 'fluent-bit',
      namespace: 'shop',
      pod: 'checkout-7d9f8c6b5d-x2k4q',
      pod_template_hash: '7d9f8c6b5d',
      stream: 'stdout',
      system: 'shop',
      tag: 'kube.var.log.containers.checkout',
    });
    assert.deepEqual(stream!.entries, [
      {
        ts: ns(entry.time),
        line: JSON.stringify({ log: K8S_RECORD.log }),
        metadata: { time: '2026-11-21T10:00:00.123456789Z' },
      },
    ]);
  });

  it('JSON with gzip: the same streams; key_value lines; drop_single_key raw and true', async () => {
    const kv = create({
      encoding: 'json',
      compression: 'gzip',
      line_format: 'key_value',
      labels: { job: 'kv' },
    });
    const raw = create(
      { encoding: 'json', labels: { job: 'raw' }, drop_single_key: 'raw', remove_keys: 'stream' },
      'raw',
    );
    const quoted = create({ labels: { job: 'true' }, drop_single_key: true, label_keys: 'stream' }, 'true');
    const entries = [
      { time: at(1), record: { log: 'GET /health 200', stream: 'stdout' } },
      { time: at(2), record: { log: 'level=warn msg="slow"', stream: 'stderr' } },
    ];
    for (const out of [kv, raw, quoted]) await out.write(chunk(entries), NO_DEADLINE);
    assert.equal(fake.pushes[0]!.encoding, 'json');
    assert.equal(fake.pushes[0]!.headers['content-encoding'], 'gzip');
    assert.deepEqual(
      fake.stream({ job: 'kv' })!.entries.map((e) => e.line),
      ['log="GET /health 200" stream=stdout', 'log="level=warn msg=\\"slow\\"" stream=stderr'],
    );
    assert.deepEqual(
      fake.stream({ job: 'raw' })!.entries.map((e) => e.line),
      ['GET /health 200', 'level=warn msg="slow"'],
    );
    assert.deepEqual(
      fake.stream({ job: 'true', stream: 'stdout' })!.entries.map((e) => e.line),
      ['"GET /health 200"'],
    );
    assert.deepEqual(
      fake.stream({ job: 'true', stream: 'stderr' })!.entries.map((e) => e.line),
      ['"level=warn msg=\\"slow\\""'],
    );
  });

  it('sends each stream oldest first, to the nanosecond, whatever order the chunk holds', async () => {
    await restartFake({ orderedWrites: true });
    const out = create({ label_keys: 'app' });
    const times = [at(5, 2), at(5, 1), at(4, 999_999_999), at(5, 10), at(6, 0), at(5, 2)];
    const entries = times.map((time, i) => ({ time, record: { app: i % 2 === 0 ? 'a' : 'b', i } }));
    assert.equal(await out.write(chunk(entries), NO_DEADLINE), undefined, 'no entry out of order');
    for (const app of ['a', 'b']) {
      const stored = fake.stream({ job: 'fluent-bit', app })!.entries.map((e) => e.ts);
      assert.deepEqual(
        stored,
        [...stored].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)),
      );
    }
    assert.deepEqual(
      fake.stream({ job: 'fluent-bit', app: 'a' })!.entries.map((e) => JSON.parse(e.line).i),
      [2, 0, 4],
    );
  });

  it('cuts a chunk larger than batch_size into several pushes, every entry stored once', async () => {
    const out = create({ batch_size: '4KiB', label_keys: 'k' });
    const entries = records(300, (i) => ({ k: String(i % 3), msg: `request ${i} ${'x'.repeat(40)}` }));
    assert.equal(await out.write(chunk(entries), NO_DEADLINE), undefined);
    assert.ok(fake.pushes.length >= 5, `${fake.pushes.length} pushes`);
    assert.equal(
      fake.pushes.reduce((n, p) => n + p.entries, 0),
      300,
    );
    assert.equal(fake.count(), 300);
    assert.deepEqual(
      fake.streams().map((s) => s.entries.length),
      [100, 100, 100],
    );
  });
});

describe('loki output: tenants', () => {
  it('one push per tenant with its X-Scope-OrgID; records without the key use tenant_id', async () => {
    await restartFake({ multiTenant: true });
    const out = create({ tenant_id: 'platform', tenant_id_key: 'kubernetes.namespace_name' });
    const entries = [
      { time: at(1), record: { kubernetes: { namespace_name: 'shop' }, n: 1 } },
      { time: at(2), record: { n: 2 } },
      { time: at(3), record: { kubernetes: { namespace_name: 'billing' }, n: 3 } },
      { time: at(4), record: { kubernetes: { namespace_name: 'shop' }, n: 4 } },
    ];
    assert.equal(await out.write(chunk(entries), NO_DEADLINE), undefined);
    assert.deepEqual(
      fake.pushes.map((p) => [p.headers['x-scope-orgid'], p.entries]),
      [
        ['shop', 2],
        ['platform', 1],
        ['billing', 1],
      ],
    );
    assert.equal(fake.count('shop'), 2);
    assert.equal(fake.count('platform'), 1);
  });

  it('a tenant refused for now is retried alone; a bad tenant id is rejected before sending', async () => {
    const out = create({ tenant_id_key: 'tenant' });
    fake.faults = [{ status: 429, retryAfter: 2 }];
    const entries = [
      { time: at(1), record: { tenant: 'a', n: 1 } },
      { time: at(2), record: { tenant: 'b', n: 2 } },
      { time: at(3), record: { tenant: 'a/../b', n: 3 } },
    ];
    const result = await out.write(chunk(entries), NO_DEADLINE);
    assert.deepEqual(
      result!.retry!.map((e) => e.record.n),
      [1],
    );
    assert.equal(result!.reject!.length, 1);
    assert.match(result!.reject![0]!.reason, /tenant id "a\/\.\.\/b" is not valid for Loki/);
    assert.equal(fake.count('b'), 1);
  });

  it('what is handed back for retry is the chunk’s entries as they were: metadata, binary, 64-bit integers', async () => {
    const out = create({ tenant_id_key: 'tenant', label_keys: 'kubernetes.namespace_name' });
    fake.faults = [{ status: 503 }];
    const entries: Entry[] = [
      {
        time: at(1, 5),
        record: { tenant: 'a', kubernetes: { namespace_name: 'shop' }, bin: Buffer.from([0xff, 0]) },
        metadata: { otel: { trace_id: 't' } },
      },
      { time: at(2), record: { tenant: 'b', n: 1 } },
      { time: at(3, 7), record: { tenant: 'a', big: 2n ** 64n - 1n, nested: { a: [1, { b: null }] } } },
    ];
    const result = await out.write(chunk(entries), NO_DEADLINE);
    assert.deepEqual(
      result!.retry,
      [entries[0], entries[2]].map((e) => ({ ...e, tag: 'app.web' })),
    );
    assert.equal(fake.count('b'), 1);
  });
});

describe('loki output: the cardinality guard', () => {
  it('past max_label_values a new value goes as structured metadata; one warning per label; the metric counts', async () => {
    const out = create({ label_keys: ['user', 'region'], max_label_values: 2 });
    const users = ['ann', 'bob', 'cid', 'dan', 'ann', 'cid'];
    await out.write(
      chunk(users.map((user, i) => ({ time: at(i), record: { user, region: 'eu', n: i } }))),
      NO_DEADLINE,
    );
    assert.deepEqual(
      fake
        .streams()
        .map((s) => s.labels)
        .sort((a, b) => String(a.user ?? '').localeCompare(String(b.user ?? ''))),
      [
        { job: 'fluent-bit', region: 'eu' },
        { job: 'fluent-bit', region: 'eu', user: 'ann' },
        { job: 'fluent-bit', region: 'eu', user: 'bob' },
      ],
    );
    const demoted = fake.stream({ job: 'fluent-bit', region: 'eu' })!;
    assert.deepEqual(
      demoted.entries.map((e) => [JSON.parse(e.line).n, e.metadata]),
      [
        [2, { user: 'cid' }],
        [3, { user: 'dan' }],
        [5, { user: 'cid' }],
      ],
    );
    await out.write(chunk([{ time: at(10), record: { user: 'eve', region: 'eu', n: 10 } }]), NO_DEADLINE);
    const text = await metrics.registry.metrics();
    assert.equal(
      sample(text, 'estuary_loki_labels_demoted_total', { plugin_id: 'loki.0', label: 'user' }).value,
      4,
    );
    const warnings = logLines.filter((l) => l.level === 40 && l.label === 'user');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.plugin_id, 'loki.0');
    assert.equal(warnings[0]!.max_label_values, 2);
  });
});

describe('loki output: what Loki answers', () => {
  it('400: the request’s entries are rejected with Loki’s own message (line too long, too far behind)', async () => {
    const out = create({ label_keys: 'app' });
    // Stream b has an entry of now: one from three hours before is too far behind it.
    await out.write(chunk([{ time: at(3), record: { app: 'b', msg: 'just now' } }]), NO_DEADLINE);
    const longLine = 'x'.repeat(300 * 1024);
    const old = new EventTime(BASE - 3 * 3600, 0);
    const entries = [
      { time: at(1), record: { app: 'a', msg: 'fine' } },
      { time: at(2), record: { app: 'a', msg: longLine } },
      { time: old, record: { app: 'b', msg: 'three hours late' } },
    ];
    const result = await out.write(chunk(entries), NO_DEADLINE);
    assert.equal(result!.retry!.length, 0);
    assert.equal(result!.reject!.length, 3, 'every entry of the request');
    const reason = result!.reject![0]!.reason;
    assert.ok(reason.startsWith('Loki refused the entries (400): '), reason);
    assert.match(
      reason,
      /Max entry size '262144' bytes exceeded for stream '\{app="a", job="fluent-bit"\}' while adding an entry with length '307210' bytes/,
    );
    assert.match(
      reason,
      /entry with timestamp .* \+0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: /,
    );
    assert.match(reason, /user 'fake', total ignored: 1 out of 1 for stream: \{app="b", job="fluent-bit"\}/);
    assert.deepEqual(fake.lines(), ['{"msg":"just now"}', '{"msg":"fine"}'], 'Loki kept the valid entry');
  });

  it('401 and 403 halt the output (never dead-lettered), saying what to check', async () => {
    await restartFake({ auth: { username: 'u', password: 'right' } });
    const wrong = create({ username: 'u', password: 'wrong' });
    await assert.rejects(wrong.write(chunk(records(2)), NO_DEADLINE), (err: Error) => {
      assert.ok(err instanceof HaltError);
      assert.match(err.message, /401 unauthorized: Unauthorized: .*check username\/password or bearer_token/);
      return true;
    });
    const right = create({ username: 'u', password: 'right' }, 'ok');
    assert.equal(await right.write(chunk(records(2)), NO_DEADLINE), undefined);
    fake.faults = [{ status: 403, body: 'tenant not allowed' }];
    await assert.rejects(
      right.write(chunk(records(1)), NO_DEADLINE),
      (err: Error) => err instanceof HaltError && /403 forbidden: tenant not allowed/.test(err.message),
    );
  });

  it('a URL that is not the push endpoint (404) halts, and says so', async () => {
    const out = create({ url: `${fake.url}/loki/api/v1/pushh` });
    await assert.rejects(
      out.write(chunk(records(1)), NO_DEADLINE),
      (err: Error) =>
        err instanceof HaltError && /404 not found.*is url Loki's push endpoint/.test(err.message),
    );
  });

  it('a halt after another tenant’s push went through halts the whole write', async () => {
    const out = create({ tenant_id_key: 'tenant' });
    fake.faults = [null, { status: 401 }];
    const entries = [
      { time: at(1), record: { tenant: 'a', n: 1 } },
      { time: at(2), record: { tenant: 'b', n: 2 } },
      { time: at(3), record: { tenant: 'c', n: 3 } },
    ];
    await assert.rejects(out.write(chunk(entries), NO_DEADLINE), HaltError);
    assert.equal(fake.pushes.length, 2, 'tenant c is not tried');
  });

  it('bearer_token and headers travel on every push', async () => {
    await restartFake({ auth: { bearerToken: 's3cret' } });
    const out = create({ bearer_token: 's3cret', headers: { 'x-team': 'platform' } });
    assert.equal(await out.write(chunk(records(1)), NO_DEADLINE), undefined);
    assert.equal(fake.pushes[0]!.headers['x-team'], 'platform');
    assert.match(String(fake.pushes[0]!.headers['user-agent']), /^estuary/);
  });

  it('TLS: Loki’s certificate verified against tls.ca_file, or not at all with verify: false', async () => {
    const { cert, key } = selfSignedCert(dir);
    await restartFake({ tls: { cert, key } });
    assert.equal(
      await create({ tls: { ca_file: 'cert.pem' } }).write(chunk(records(1)), NO_DEADLINE),
      undefined,
    );
    assert.equal(
      await create({ tls: { verify: false } }, 'noverify').write(chunk(records(1)), NO_DEADLINE),
      undefined,
    );
    // A certificate that does not verify fails every time until someone changes something: halt.
    await assert.rejects(
      create({}, 'system-cas').write(chunk(records(1)), NO_DEADLINE),
      (err: Error) => err instanceof HaltError && /self-signed certificate.*check ca_file/.test(err.message),
    );
    assert.equal(fake.count(), 1, 'the same entry twice is one entry');
    await assert.rejects(
      create({ tls: { ca_file: 'nope.pem' } }, 'missing').start!(),
      /HaltError: tls\.ca_file: cannot read .*nope\.pem/,
    );
  });

  it('a Loki that never answers is abandoned when the write’s signal aborts, well before request_timeout', async () => {
    await assertAbandonedAtAbort(
      (url, signal) => create({ url, request_timeout: '1m' }).write(chunk(records(1)), { signal }),
      /push: abandoned: /,
    );
  });

  it('request_timeout abandons a push that gets no answer', async () => {
    const silent = await SilentServer.start();
    try {
      const out = create({ url: silent.url, request_timeout: '200ms' });
      await assert.rejects(
        out.write(chunk(records(1)), NO_DEADLINE),
        (err: Error) =>
          err instanceof RetryableError && /no answer within request_timeout \(200ms\)/.test(err.message),
      );
    } finally {
      await silent.stop();
    }
  });

  it('429 and 5xx are retryable, with Loki’s Retry-After; nothing sent is lost', async () => {
    const out = create();
    fake.faults = [{ status: 429, retryAfter: 3 }, { status: 503 }];
    await assert.rejects(out.write(chunk(records(2)), NO_DEADLINE), (err: Error) => {
      assert.ok(err instanceof RetryableError);
      assert.equal(err.retryAfterMs, 3000);
      assert.match(err.message, /: 429: Ingestion rate limit exceeded/);
      return true;
    });
    await assert.rejects(
      out.write(chunk(records(2)), NO_DEADLINE),
      (err: Error) => err instanceof RetryableError && err.retryAfterMs === undefined,
    );
    assert.equal(await out.write(chunk(records(2)), NO_DEADLINE), undefined);
    assert.equal(fake.count(), 2);
  });

  it('an unreachable Loki is retryable', async () => {
    const port = fake.port;
    await fake.stop();
    const out = create({ url: `http://127.0.0.1:${port}` });
    await assert.rejects(
      out.write(chunk(records(2)), NO_DEADLINE),
      (err: Error) => err instanceof RetryableError && /ECONNREFUSED/.test(err.message),
    );
    fake = await LokiFake.start();
  });

  it('after a push failed as a whole, the chunk’s later pushes for that tenant are not tried', async () => {
    const out = create({ batch_size: 200 });
    fake.faults = [{ status: 503 }];
    await assert.rejects(out.write(chunk(records(20)), NO_DEADLINE), RetryableError);
    assert.equal(fake.pushes.length, 1);
    assert.equal(await out.write(chunk(records(20)), NO_DEADLINE), undefined);
    assert.ok(fake.pushes.length > 3);
    assert.equal(fake.count(), 20);
  });

  it('413 halves the push until it fits; one entry still too large is rejected', async () => {
    const out = create();
    fake.faults = [{ status: 413 }, null, { status: 413 }, { status: 413 }];
    const result = await out.write(chunk(records(3)), NO_DEADLINE);
    // [0,1,2] → 413; [0,1] → ok; [2] → 413 → alone, rejected
    assert.equal(result!.reject!.length, 1);
    assert.match(
      result!.reject![0]!.reason,
      /413 request entity too large.*one entry of \d+ bytes is over the limit/,
    );
    assert.equal(fake.count(), 2);
  });

  it('a record that ends up with no label at all is rejected with the reason, not sent', async () => {
    const out = create({ labels: {}, label_keys: 'app' });
    const result = await out.write(
      chunk([
        { time: at(1), record: { app: 'web' } },
        { time: at(2), record: { msg: 'no app' } },
      ]),
      NO_DEADLINE,
    );
    assert.equal(result!.reject!.length, 1);
    assert.match(result!.reject![0]!.reason, /no labels: Loki needs at least one label per stream/);
    assert.equal(fake.count(), 1);
  });

  it('a record that cannot be encoded (3,000 deep) is rejected alone with the reason; the others are sent', async () => {
    const deep: Record<string, unknown> = { a: [] };
    let cur = deep.a as unknown[];
    for (let i = 0; i < 3000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    const out = create();
    const result = await out.write(
      chunk([
        { time: at(1), record: { ok: 0 } },
        { time: at(2), record: deep },
        { time: at(3), record: { ok: 2 } },
      ]),
      NO_DEADLINE,
    );
    assert.equal(result!.reject!.length, 1);
    assert.match(
      result!.reject![0]!.reason,
      /^cannot encode the record: EncodeError: nested too deep to write as JSON$/,
    );
    assert.equal(fake.count(), 2);
  });

  it('a label map that cannot be read fails at start', async () => {
    const out = create({ label_map_path: 'missing.json' });
    await assert.rejects(
      out.start!(),
      (err: Error) => err instanceof HaltError && /cannot read label_map_path/.test(err.message),
    );
    await writeFile(join(dir, 'bad.json'), '{"a": 1}');
    await assert.rejects(create({ label_map_path: 'bad.json' }).start!(), /expected a label name/);
  });
});
