import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import { pino } from 'pino';
import { type Batch, decodeEntries } from '../../src/core/batch.ts';
import { BackpressureError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { eventTimeBytes, pack } from '../../src/core/msgpack.ts';
import { httpInput } from '../../src/inputs/http.ts';
import type { Emit, Input } from '../../src/inputs/input.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { startEstuary } from '../support/estuary.ts';
import { RawHttp } from '../support/http.ts';
import { sample } from '../support/prom-text.ts';
import { selfSignedCert } from '../support/tls.ts';
import { freePort, waitFor } from '../support/wait.ts';

interface Harness {
  input: Input;
  url: string;
  batches: Batch[];
  metrics: Metrics;
  logs: Record<string, unknown>[];
}

const running: Input[] = [];
after(() => Promise.all(running.map((i) => i.stop())));

async function startHttp(
  options: Record<string, unknown> = {},
  emit?: Emit,
  configDir = process.cwd(),
): Promise<Harness> {
  const port = await freePort();
  const metrics = new Metrics();
  const batches: Batch[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) }).child({
    plugin_id: 'web',
  });
  const config = httpInput.schema.parse({ listen: '127.0.0.1', port, ...options });
  const input = httpInput.create(config, { id: 'web', logger, metrics, configDir });
  running.push(input);
  await input.start(
    emit ??
      (async (batch) => {
        batches.push(batch);
      }),
  );
  const scheme = options.tls ? 'https' : 'http';
  return { input, url: `${scheme}://127.0.0.1:${port}`, batches, metrics, logs };
}

const records = (batch: Batch | undefined) => decodeEntries(batch!.payload).map((e) => e.record);

function post(
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, { method: 'POST', body, headers });
}

const JSON_TYPE = { 'content-type': 'application/json' };

async function counter(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return hit?.value ?? 0;
}

const requests = (h: Harness, result: string) =>
  counter(h.metrics.inputRequests, { plugin_id: 'web', type: 'http', result });

describe('http input — Fluentd and Fluent Bit request shapes', () => {
  let h: Harness;
  before(async () => {
    h = await startHttp();
  });

  it("takes curl -d 'json={...}' (a form) and answers 200 with an empty body", async () => {
    const res = await post(`${h.url}/app.web`, 'json={"msg":"hi"}', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    assert.equal(h.batches.length, 1);
    assert.equal(h.batches[0]!.tag, 'app.web');
    assert.deepEqual(records(h.batches[0]), [{ msg: 'hi' }]);
  });

  it('takes a form with no content-type at all', async () => {
    h.batches.length = 0;
    const res = await post(`${h.url}/app.web`, new TextEncoder().encode('json={"msg":"bare"}'));
    assert.equal(res.status, 200);
    assert.deepEqual(records(h.batches[0]), [{ msg: 'bare' }]);
  });

  it('takes application/json: one object, and an array of 3 as ONE batch', async () => {
    h.batches.length = 0;
    assert.equal((await post(`${h.url}/app.web`, '{"msg":"hi"}', JSON_TYPE)).status, 200);
    const res = await post(`${h.url}/app.web`, JSON.stringify([{ n: 1 }, { n: 2 }, { n: 3 }]), JSON_TYPE);
    assert.equal(res.status, 200);
    assert.equal(h.batches.length, 2);
    assert.deepEqual(records(h.batches[0]), [{ msg: 'hi' }]);
    assert.equal(h.batches[1]!.count, 3);
    assert.deepEqual(records(h.batches[1]), [{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('takes Fluent Bit out_http format json (float date) and json_lines', async () => {
    h.batches.length = 0;
    const fbJson = JSON.stringify([
      { date: 1700000000.5, log: 'one' },
      { date: 1700000001.25, log: 'two' },
    ]);
    assert.equal((await post(`${h.url}/kube.logs`, fbJson, JSON_TYPE)).status, 200);
    const lines = '{"date":1700000002.0,"log":"three"}\n{"date":1700000003.75,"log":"four"}\n';
    assert.equal((await post(`${h.url}/kube.logs`, lines, JSON_TYPE)).status, 200);
    const entries = h.batches.flatMap((b) => decodeEntries(b.payload));
    assert.deepEqual(
      entries.map((e) => e.record),
      [{ log: 'one' }, { log: 'two' }, { log: 'three' }, { log: 'four' }],
    );
    assert.deepEqual(
      entries.map((e) => e.time),
      [
        new EventTime(1700000000, 500_000_000),
        new EventTime(1700000001, 250_000_000),
        new EventTime(1700000002, 0),
        new EventTime(1700000003, 750_000_000),
      ],
    );
  });

  it('takes a Fluent Bit msgpack raw chunk with EventTime and metadata, exactly', async () => {
    h.batches.length = 0;
    const t = new EventTime(1700000000, 987654321);
    const chunk = Buffer.concat([
      Buffer.from([0x92, 0x92]),
      eventTimeBytes(t),
      pack({ k8s: { ns: 'prod' } }),
      pack({ log: 'hello' }),
      Buffer.from([0x92]),
      eventTimeBytes(t),
      pack({ log: 'plain' }),
    ]);
    const res = await post(`${h.url}/kube.var.log`, chunk, { 'content-type': 'application/msgpack' });
    assert.equal(res.status, 200);
    assert.deepEqual(decodeEntries(h.batches[0]!.payload), [
      { time: t, record: { log: 'hello' }, metadata: { k8s: { ns: 'prod' } } },
      { time: t, record: { log: 'plain' } },
    ]);
  });

  it('takes NDJSON and gzip, deflate and zstd bodies', async () => {
    h.batches.length = 0;
    const ndjson = '{"n":1}\n\n{"n":2}\n';
    assert.equal((await post(`${h.url}/t`, ndjson, { 'content-type': 'application/x-ndjson' })).status, 200);
    for (const [encoding, compress] of [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
      ['zstd', zlib.zstdCompressSync],
    ] as const) {
      const res = await post(`${h.url}/t`, compress(Buffer.from(ndjson)), {
        'content-type': 'application/json',
        'content-encoding': encoding,
      });
      assert.equal(res.status, 200, encoding);
    }
    assert.equal(h.batches.length, 4);
    for (const b of h.batches) assert.deepEqual(records(b), [{ n: 1 }, { n: 2 }]);
  });

  it('derives the tag from the path: /app/web and /app.web both give app.web; query ignored but time', async () => {
    h.batches.length = 0;
    await post(`${h.url}/app/web?foo=bar`, '{"a":1}', JSON_TYPE);
    await post(`${h.url}/app.web/?time=1700000000.5`, '{"a":1,"time":5}', JSON_TYPE);
    assert.deepEqual(
      h.batches.map((b) => b.tag),
      ['app.web', 'app.web'],
    );
    const [entry] = decodeEntries(h.batches[1]!.payload);
    assert.deepEqual(entry!.time, new EventTime(1700000000, 500_000_000));
    assert.deepEqual(entry!.record, { a: 1, time: 5 });
  });

  it('takes a long Kubernetes-style tag', async () => {
    h.batches.length = 0;
    const tag = `kube.var.log.containers.web-7d4b9c-abcde_prod_web-${'f'.repeat(64)}.log`;
    assert.equal((await post(`${h.url}/${tag}`, '{"a":1}', JSON_TYPE)).status, 200);
    assert.equal(h.batches[0]!.tag, tag);
  });

  it('answers 200 and emits nothing for an empty body or an empty array', async () => {
    h.batches.length = 0;
    assert.equal((await post(`${h.url}/t`, '', JSON_TYPE)).status, 200);
    assert.equal((await fetch(`${h.url}/t`, { method: 'POST' })).status, 200);
    assert.equal((await post(`${h.url}/t`, '[]', JSON_TYPE)).status, 200);
    assert.equal(h.batches.length, 0);
  });
});

describe('http input — refusals', () => {
  let h: Harness;
  before(async () => {
    h = await startHttp({ max_body_size: '64KiB', max_decompressed_size: '256KiB' });
  });

  it('refuses bad JSON with 400, a one-line reason, nothing emitted and no body in the log', async () => {
    const res = await post(`${h.url}/t`, '{"ok":1}\n{"secret":"hunter2",}', JSON_TYPE);
    assert.equal(res.status, 400);
    assert.equal(await res.text(), 'invalid JSON at byte 29: Expected double-quoted property name\n');
    assert.equal(h.batches.length, 0);
    assert.equal(await requests(h, 'bad_request'), 1);
    const warn = h.logs.find((l) => l.msg === 'http request refused');
    assert.equal(warn?.level, 40);
    assert.equal(warn?.status, 400);
    assert.equal(warn?.plugin_id, 'web');
    assert.doesNotMatch(JSON.stringify(h.logs), /hunter2/);
  });

  it('refuses JSON nested past max_nesting_depth with 400 and the reason, even 4,000 deep', async () => {
    const deep = (depth: number) => `{"a":${'['.repeat(depth - 1)}1${']'.repeat(depth - 1)}}`;
    for (const body of [deep(101), deep(4000), `[${deep(3000)}]`]) {
      const res = await post(`${h.url}/deep`, body, JSON_TYPE);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /^JSON nested deeper than max_nesting_depth \(100\) at byte \d+\n$/);
    }
    assert.equal(h.batches.length, 0);
    const ok = await post(`${h.url}/deep`, deep(100), JSON_TYPE);
    assert.equal(ok.status, 200);
    assert.equal(h.batches.length, 1);
    h.batches.length = 0;
    const shallow = await startHttp({ max_nesting_depth: 5 });
    const res = await post(`${shallow.url}/deep`, deep(6), JSON_TYPE);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /max_nesting_depth \(5\)/);
    assert.equal((await post(`${shallow.url}/deep`, deep(5), JSON_TYPE)).status, 200);
    const mp = await post(`${shallow.url}/deep`, pack({ a: [[[[1]]]], b: 1 }), {
      'content-type': 'application/msgpack',
    });
    assert.equal(mp.status, 200);
    const mpDeep = await post(`${shallow.url}/deep`, pack({ a: [[[[[1]]]]] }), {
      'content-type': 'application/msgpack',
    });
    assert.equal(mpDeep.status, 400);
    assert.match(await mpDeep.text(), /nested deeper than 5 levels/);
  });

  it('refuses an empty tag with 400 and other methods with 405', async () => {
    const res = await post(`${h.url}/`, '{"a":1}', JSON_TYPE);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /missing tag/);
    assert.equal((await fetch(`${h.url}/app.web`)).status, 405);
    assert.equal((await fetch(`${h.url}/app.web`, { method: 'PUT', body: '{}' })).status, 405);
    assert.equal(h.batches.length, 0);
  });

  it('lets unusual and malformed content types reach the handler (our 415, not Fastify’s)', async () => {
    for (const type of ['text/plain', 'application/octet-stream', 'nonsense']) {
      const res = await post(`${h.url}/t`, '{"a":1}', { 'content-type': type });
      assert.equal(res.status, 415, type);
      assert.match(await res.text(), /^unsupported content-type .*application\/json/);
    }
    const form = await post(`${h.url}/t`, 'data=1', { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 400);
    assert.equal(await form.text(), "missing 'json', 'ndjson' or 'msgpack' parameter\n");
  });

  it('refuses a raw body over max_body_size with 413', async () => {
    const res = await post(`${h.url}/t`, JSON.stringify({ big: 'x'.repeat(70 * 1024) }), JSON_TYPE);
    assert.equal(res.status, 413);
    assert.match(await res.text(), /max_body_size \(65536 bytes\)/);
    assert.equal(await requests(h, 'too_large'), 1);
  });

  it('refuses a gzip bomb with 413', async () => {
    const bomb = zlib.gzipSync(Buffer.from(`{"a":"${'x'.repeat(1024 * 1024)}"}`));
    assert.ok(bomb.length < 64 * 1024);
    const res = await post(`${h.url}/t`, bomb, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(res.status, 413);
    assert.match(await res.text(), /max_decompressed_size/);
    assert.equal(await requests(h, 'too_large'), 2);
    assert.equal(h.batches.length, 0);
  });
});

describe('http input — acknowledgement and backpressure', () => {
  it('answers only after emit resolves, and records ack latency', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const seen: Batch[] = [];
    const h = await startHttp({}, async (batch, options) => {
      assert.deepEqual(options, { wait: false });
      seen.push(batch);
      await gate;
    });
    let answered = false;
    const res = post(`${h.url}/t`, '[{"a":1},{"a":2}]', JSON_TYPE).then((r) => {
      answered = true;
      return r;
    });
    await waitFor(() => seen.length === 1, { what: 'emit' });
    await new Promise((r) => setTimeout(r, 100)); // time for a premature answer to arrive
    assert.equal(answered, false);
    release();
    assert.equal((await res).status, 200);
    const labels = { plugin_id: 'web', type: 'http' };
    assert.equal(await counter(h.metrics.inputRecords, labels), 2);
    assert.equal(await requests(h, 'ok'), 1);
    const latency = await h.metrics.ackLatency.get();
    const count = latency.values.find((v) => v.metricName === 'estuary_ack_latency_seconds_count')?.value;
    const sum = latency.values.find((v) => v.metricName === 'estuary_ack_latency_seconds_sum')?.value ?? 0;
    assert.equal(count, 1);
    assert.ok(sum >= 0.09, `ack latency ${sum}s`);
  });

  it('answers 503 with Retry-After on BackpressureError, and 503 on any other emit error', async () => {
    let error: Error = new BackpressureError('buffer full', 7);
    const h = await startHttp({}, async () => {
      throw error;
    });
    const full = await post(`${h.url}/t`, '{"a":1}', JSON_TYPE);
    assert.equal(full.status, 503);
    assert.equal(full.headers.get('retry-after'), '7');
    assert.equal(await full.text(), 'buffer full\n');
    error = new Error('redis down');
    const down = await post(`${h.url}/t`, '{"a":1}', JSON_TYPE);
    assert.equal(down.status, 503);
    assert.ok(down.headers.get('retry-after'));
    assert.equal(await requests(h, 'backpressure'), 1);
    assert.equal(await requests(h, 'error'), 1);
    assert.equal(await counter(h.metrics.inputRecords, { plugin_id: 'web', type: 'http' }), 0);
    assert.equal(await counter(h.metrics.inputBytes, { plugin_id: 'web', type: 'http' }), 14);
  });

  it('answers 204 with use_204_response', async () => {
    const h = await startHttp({ use_204_response: true });
    const res = await post(`${h.url}/t`, '{"a":1}', JSON_TYPE);
    assert.equal(res.status, 204);
    assert.equal(h.batches.length, 1);
  });
});

describe('http input — in-flight budget (service.max_inflight_bytes)', () => {
  const KiB = 1024;
  const LIMIT = 1024 * KiB;
  let e: Awaited<ReturnType<typeof startEstuary>>;
  let port: number;
  let holder: RawHttp;

  const inflight = async () => sample(await e.metrics(), 'estuary_inflight_bytes').value;

  before(async () => {
    port = await freePort();
    e = await startEstuary(`
service:
  max_inflight_bytes: 1MiB
  shutdown_timeout: 1s
inputs:
  - { type: http, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: scripted, id: out }
`);
  });
  after(() => e.stop());

  beforeEach(async () => {
    // A sender that announced 700 KiB and has not sent them: their room is taken.
    holder = await RawHttp.open(port);
    await holder.sendHead('/hold', { 'content-type': 'application/json', 'content-length': 700 * KiB });
    await waitFor(async () => (await inflight()) === 700 * KiB, { what: 'the holder’s 700 KiB taken' });
  });
  afterEach(async () => {
    holder.destroy();
    await waitFor(async () => (await inflight()) === 0, { what: 'everything given back' });
  });

  it('answers 503 + Retry-After to a Content-Length over the free room before the body is sent', async () => {
    assert.equal(sample(await e.metrics(), 'estuary_inflight_limit_bytes').value, LIMIT);
    const refused = await RawHttp.open(port);
    await refused.sendHead('/t', { 'content-type': 'application/json', 'content-length': 400 * KiB });
    // Not a byte of the body was sent: the answer comes from the headers alone.
    const res = await refused.waitResponse();
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.equal(res.headers.connection, 'close');
    assert.match(res.body, /too many bytes in flight \(service\.max_inflight_bytes 1048576\)/);
    await refused.waitClosed();
    assert.equal(await inflight(), 700 * KiB, 'a refused request holds nothing');
    // What fits still goes through.
    const ok = await fetch(`http://127.0.0.1:${port}/t`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    assert.equal(ok.status, 200);
    assert.equal(await inflight(), 700 * KiB, 'an answered request holds nothing');
    const requests = sample(await e.metrics(), 'estuary_input_requests_total', { result: 'backpressure' });
    assert.equal(requests.value, 1);
  });

  it('gives back what a client held when it goes away mid-body', async () => {
    await holder.write(Buffer.alloc(100 * KiB, 0x20));
    holder.destroy();
    await waitFor(async () => (await inflight()) === 0, { what: 'the holder’s room given back' });
    // A chunked body cut off by its client: what it had taken is given back too.
    const chunked = await RawHttp.open(port);
    await chunked.sendHead('/t', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    await chunked.sendChunk(Buffer.alloc(64 * KiB, 0x20));
    await waitFor(async () => (await inflight()) === 64 * KiB, { what: 'the first piece taken' });
    chunked.destroy();
    await waitFor(async () => (await inflight()) === 0, { what: 'the chunked request’s room given back' });
    holder = await RawHttp.open(port); // for afterEach
  });

  it('cuts a chunked body off with 503 once it no longer fits, without reading the rest', async () => {
    const chunked = await RawHttp.open(port);
    await chunked.sendHead('/t', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const piece = Buffer.alloc(64 * KiB, 0x20);
    let sent = 0;
    // One piece at a time, each once the last one was counted, until the server answers.
    while (chunked.response() === undefined && !chunked.closed && sent < 4 * LIMIT) {
      const before = e.app.inflight.bytes;
      await chunked.sendChunk(piece);
      sent += piece.length;
      await waitFor(() => chunked.response() || e.app.inflight.bytes >= before + piece.length, {
        what: 'the piece counted or an answer',
      });
    }
    const res = await chunked.waitResponse();
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(res.body, /max_inflight_bytes/);
    assert.ok(sent <= LIMIT - 700 * KiB + piece.length, `cut off after ${sent} bytes`);
    assert.ok(e.app.inflight.peak <= LIMIT, `peak ${e.app.inflight.peak}`);
    await chunked.waitClosed();
    assert.equal(await inflight(), 700 * KiB);
  });

  it('counts decompressed bytes: a small gzip body cannot expand past the budget', async () => {
    const body = zlib.gzipSync(Buffer.alloc(20 * LIMIT, 0x20));
    assert.ok(body.length < 100 * KiB);
    const res = await fetch(`http://127.0.0.1:${port}/t`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body,
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '1');
    assert.match(await res.text(), /max_inflight_bytes/);
    // Decoding stops at the first piece that does not fit (pieces are 64 KiB).
    assert.ok(e.app.inflight.peak <= LIMIT, `peak ${e.app.inflight.peak}`);
    assert.equal(await inflight(), 700 * KiB);
  });
});

describe('http input — options', () => {
  it('requires a bearer token when auth_tokens is set, and never logs it', async () => {
    const h = await startHttp({ auth_tokens: ['tok-one', 'tok-two'] });
    const none = await post(`${h.url}/t`, '{"a":1}', JSON_TYPE);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, authorization: 'Bearer tok-one-x' });
    assert.equal(wrong.status, 401);
    const basic = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, authorization: 'Basic tok-two' });
    assert.equal(basic.status, 401);
    assert.equal(h.batches.length, 0);
    const ok = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, authorization: 'Bearer tok-two' });
    assert.equal(ok.status, 200);
    assert.equal(h.batches.length, 1);
    assert.equal(await requests(h, 'unauthorized'), 3);
    assert.ok(h.logs.some((l) => l.msg === 'http request refused'));
    assert.doesNotMatch(JSON.stringify(h.logs), /tok-one|tok-two/);
  });

  it('a flood of bad requests is counted in full but logged at most once a second', async () => {
    const h = await startHttp();
    for (let i = 0; i < 50; i++) assert.equal((await post(`${h.url}/t`, '{bad', JSON_TYPE)).status, 400);
    assert.equal(await requests(h, 'bad_request'), 50);
    const lines = h.logs.filter((l) => l.msg === 'http request refused');
    assert.ok(lines.length >= 1 && lines.length <= 3, `${lines.length} log lines for 50 bad requests`);
  });

  it('add_http_headers and add_remote_addr, like Fluentd (but never Authorization)', async () => {
    const h = await startHttp({ add_http_headers: true, add_remote_addr: true, auth_tokens: ['s3cret'] });
    await post(`${h.url}/t`, '{"a":1}', {
      ...JSON_TYPE,
      'x-request-id': 'r-1',
      authorization: 'Bearer s3cret',
    });
    const [first] = records(h.batches[0]);
    assert.equal(first!.HTTP_X_REQUEST_ID, 'r-1');
    assert.equal(first!.HTTP_CONTENT_TYPE, 'application/json');
    assert.equal(first!.REMOTE_ADDR, '127.0.0.1');
    assert.equal(first!.HTTP_AUTHORIZATION, undefined);
    assert.doesNotMatch(JSON.stringify(first), /s3cret/);
    await post(`${h.url}/t`, '{"a":1}', {
      ...JSON_TYPE,
      authorization: 'Bearer s3cret',
      'x-forwarded-for': '203.0.113.7, 10.0.0.1',
    });
    assert.equal(records(h.batches[1])[0]!.REMOTE_ADDR, '203.0.113.7');
  });

  it('tag_header takes the tag from a header (path as fallback); add_tag_prefix prepends', async () => {
    const h = await startHttp({ tag_header: 'X-Tag', add_tag_prefix: 'fb' });
    await post(`${h.url}/ignored`, '{"a":1}', { ...JSON_TYPE, 'x-tag': 'kube.app' });
    await post(`${h.url}/from/path`, '{"a":1}', JSON_TYPE);
    assert.deepEqual(
      h.batches.map((b) => b.tag),
      ['fb.kube.app', 'fb.from.path'],
    );
  });

  it('time_key and keep_time_key', async () => {
    const h = await startHttp({ time_key: 'ts', keep_time_key: true });
    await post(`${h.url}/t`, '{"ts":"2024-01-02T03:04:05.123456789Z","a":1}', JSON_TYPE);
    const [entry] = decodeEntries(h.batches[0]!.payload);
    assert.deepEqual(entry!.time, new EventTime(1704164645, 123456789));
    assert.deepEqual(entry!.record, { ts: '2024-01-02T03:04:05.123456789Z', a: 1 });
  });

  it('CORS: preflight and Access-Control-Allow-Origin for allowed origins, 403 for others', async () => {
    const h = await startHttp({ cors_allow_origins: ['https://app.example'], cors_allow_credentials: true });
    const preflight = await fetch(`${h.url}/t`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(preflight.headers.get('access-control-allow-credentials'), 'true');
    assert.match(preflight.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.equal(preflight.headers.get('access-control-allow-headers'), 'content-type');
    const evil = await fetch(`${h.url}/t`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);

    const ok = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, origin: 'https://app.example' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
    const refused = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, origin: 'https://evil.example' });
    assert.equal(refused.status, 403);
    assert.equal(h.batches.length, 1);
  });

  it('CORS with *', async () => {
    const h = await startHttp({ cors_allow_origins: ['*'] });
    const res = await post(`${h.url}/t`, '{"a":1}', { ...JSON_TYPE, origin: 'https://any.example' });
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const none = await startHttp();
    const plain = await post(`${none.url}/t`, '{"a":1}', { ...JSON_TYPE, origin: 'https://any.example' });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('access-control-allow-origin'), null);
  });

  it('refuses cors_allow_credentials with origin *, like Fluentd', () => {
    const config = httpInput.schema.parse({ cors_allow_origins: ['*'], cors_allow_credentials: true });
    const deps = { id: 'web', logger: pino({ level: 'silent' }), metrics: new Metrics(), configDir: '.' };
    assert.throws(
      () => httpInput.create(config, deps),
      /cors_allow_credentials needs explicit cors_allow_origins/,
    );
  });

  it('has Fluentd-like defaults and a strict schema', () => {
    const config = httpInput.schema.parse({}) as Record<string, unknown>;
    assert.equal(config.listen, '0.0.0.0');
    assert.equal(config.port, 9880);
    assert.equal(config.time_key, 'time');
    assert.equal(config.max_body_size, 32 * 1024 * 1024);
    assert.equal(config.use_204_response, false);
    assert.equal(config.max_nesting_depth, 100);
    assert.equal(httpInput.schema.safeParse({ max_nesting_depth: 3 }).success, false);
    assert.equal(httpInput.schema.safeParse({ max_nesting_depth: 10_001 }).success, false);
    assert.deepEqual(config.auth_tokens, []);
    assert.equal(
      (httpInput.schema.parse({ max_body_size: '1KiB' }) as Record<string, unknown>).max_body_size,
      1024,
    );
    assert.equal(httpInput.schema.safeParse({ body_size_limit: 10 }).success, false);
  });
});

describe('http input — lifecycle', () => {
  it('is ready while listening, logs its address, stops safely twice and without start', async () => {
    const h = await startHttp();
    assert.equal(h.input.ready(), true);
    const start = h.logs.find((l) => l.msg === 'http input listening');
    assert.equal(start?.address, h.url);
    await h.input.stop();
    await h.input.stop();
    assert.equal(h.input.ready(), false);
    await assert.rejects(post(`${h.url}/t`, '{"a":1}', JSON_TYPE));

    const config = httpInput.schema.parse({});
    const deps = { id: 'x', logger: pino({ level: 'silent' }), metrics: new Metrics(), configDir: '.' };
    const idle = httpInput.create(config, deps);
    assert.equal(idle.ready(), false);
    await idle.stop();
    await idle.stop();
  });
});

describe('http input — stopping', () => {
  it('lets an in-flight request finish before stop() resolves', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let emitted = 0;
    const h = await startHttp({}, async () => {
      emitted += 1;
      await gate;
    });
    const res = post(`${h.url}/t`, '{"a":1}', JSON_TYPE);
    await waitFor(() => emitted === 1, { what: 'emit' });
    let stopped = false;
    const stopping = h.input.stop().then(() => {
      stopped = true;
    });
    assert.equal(h.input.ready(), false);
    await new Promise((r) => setTimeout(r, 50)); // time for a premature close
    assert.equal(stopped, false);
    release();
    assert.equal((await res).status, 200);
    // Not the 72 s keep-alive timeout of the client's connection.
    await waitFor(() => stopped, { what: 'stop() after the in-flight answer', timeoutMs: 5000 });
    await stopping;
  });

  it('fails start when the port is taken, and can start later', async () => {
    const h = await startHttp();
    const port = Number(new URL(h.url).port);
    const config = httpInput.schema.parse({ listen: '127.0.0.1', port });
    const deps = { id: 'x', logger: pino({ level: 'silent' }), metrics: new Metrics(), configDir: '.' };
    const second = httpInput.create(config, deps);
    await assert.rejects(
      second.start(async () => {}),
      /EADDRINUSE/,
    );
    assert.equal(second.ready(), false);
    await h.input.stop();
    await second.start(async () => {});
    assert.equal(second.ready(), true);
    await second.stop();
  });
});

describe('http input — TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-http-tls-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  before(() => {
    selfSignedCert(dir);
  });

  function httpsPost(url: string, body: string, tls: { ca?: string; cert?: string; key?: string }) {
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method: 'POST',
          headers: JSON_TYPE,
          ca: tls.ca ? readFileSync(tls.ca) : undefined,
          cert: tls.cert ? readFileSync(tls.cert) : undefined,
          key: tls.key ? readFileSync(tls.key) : undefined,
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it('serves HTTPS with cert and key read at start (relative to the config dir)', async () => {
    const h = await startHttp({ tls: { cert_file: 'cert.pem', key_file: 'key.pem' } }, undefined, dir);
    assert.match(h.url, /^https:/);
    const res = await httpsPost(`${h.url}/secure`, '{"a":1}', { ca: join(dir, 'cert.pem') });
    assert.equal(res.status, 200);
    assert.equal(h.batches[0]?.tag, 'secure');
    await assert.rejects(
      post(`${h.url.replace('https:', 'http:')}/t`, '{"a":1}', JSON_TYPE).then((r) => r.text()),
    );
  });

  it('requires a client certificate with client_auth', async () => {
    const h = await startHttp(
      { tls: { cert_file: 'cert.pem', key_file: 'key.pem', ca_file: 'cert.pem', client_auth: true } },
      undefined,
      dir,
    );
    const ca = join(dir, 'cert.pem');
    await assert.rejects(httpsPost(`${h.url}/t`, '{"a":1}', { ca }));
    const res = await httpsPost(`${h.url}/t`, '{"a":1}', { ca, cert: ca, key: join(dir, 'key.pem') });
    assert.equal(res.status, 200);
    assert.equal(h.batches.length, 1);
  });
});
