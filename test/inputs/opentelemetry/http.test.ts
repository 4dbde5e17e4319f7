import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ROOT_CONTEXT, SeverityNumber, trace } from '@opentelemetry/api';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { BackpressureError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { InflightBudget } from '../../../src/core/inflight.ts';
import {
  type AnyValue,
  decodeResponse,
  decodeStatusMessage,
  emptyLogRecord,
  encodeJsonRequest,
  type OtlpResourceLogs,
  writeAnyValue,
  writeLogRecord,
} from '../../../src/inputs/opentelemetry/otlp.ts';
import { ProtoWriter } from '../../../src/inputs/opentelemetry/protobuf.ts';
import { RawHttp } from '../../support/http.ts';
import { type OtlpHarness, otlpRequest, recording, sdkEmit, startOtlpInput } from '../../support/otlp.ts';
import { waitFor } from '../../support/wait.ts';

const running: OtlpHarness[] = [];
after(() => Promise.all(running.map((h) => h.input.stop())));

async function start(...args: Parameters<typeof startOtlpInput>): Promise<OtlpHarness> {
  const h = await startOtlpInput(...args);
  running.push(h);
  return h;
}

const TRACE_ID = '5b8efff798038103d269b633813fc60c';
const SPAN_ID = 'eee19b7ec3c1b174';

/** The records the SDK tests send: a string body, a map body, nanosecond times, a span. */
function sdkRecords() {
  const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1 });
  return [
    {
      timestamp: [1_700_000_000, 123_456_789] as [number, number],
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: 'payment declined',
      attributes: { 'http.status_code': 402, retry: false, ratio: 0.25, tags: ['a', 'b'] },
      context: ctx,
    },
    {
      timestamp: [1_700_000_001, 1] as [number, number],
      severityNumber: SeverityNumber.INFO,
      body: { msg: 'cart updated', items: 3 },
    },
  ];
}

/** What both SDK exporters must give: the mapping of the README. */
function assertSdkRecords(h: OtlpHarness) {
  // One export per record, sent at once: they may arrive in either order.
  const entries = h.entries().sort((a, b) => a.time.compare(b.time));
  assert.equal(entries.length, 2);
  const [first, second] = entries;
  assert.equal(first!.tag, 'otlp.logs');
  assert.ok(first!.time.equals(new EventTime(1_700_000_000, 123_456_789)), `time ${first!.time.toIso()}`);
  assert.ok(second!.time.equals(new EventTime(1_700_000_001, 1)), `time ${second!.time.toIso()}`);
  assert.deepEqual(first!.record, {
    log: 'payment declined',
    attributes: { 'http.status_code': 402, retry: false, ratio: 0.25, tags: ['a', 'b'] },
    severity_text: 'WARN',
    severity_number: 13,
    trace_id: TRACE_ID,
    span_id: SPAN_ID,
    trace_flags: 1,
    resource: first!.record.resource,
    scope: { name: 'cart', version: '1.2.3', attributes: { team: 'payments' } },
  });
  const resource = first!.record.resource as Record<string, unknown>;
  assert.equal(resource['service.name'], 'checkout');
  assert.equal(resource['deployment.environment'], 'test');
  assert.deepEqual(
    { msg: second!.record.msg, items: second!.record.items, severity: second!.record.severity_number },
    { msg: 'cart updated', items: 3, severity: 9 },
  );
}

describe('opentelemetry input over HTTP: the OpenTelemetry JS SDK', () => {
  const exporters = [
    ['exporter-logs-otlp-proto (protobuf)', (url: string) => new ProtoExporter({ url })],
    ['exporter-logs-otlp-http (JSON)', (url: string) => new JsonExporter({ url })],
    [
      'exporter-logs-otlp-proto with gzip',
      (url: string) => new ProtoExporter({ url, compression: 'gzip' as never }),
    ],
  ] as const;
  for (const [name, make] of exporters) {
    it(`${name}: every field mapped, time to the nanosecond`, async () => {
      const h = await start();
      const exporter = recording(make(h.url));
      await sdkEmit(exporter, sdkRecords());
      assert.deepEqual(
        exporter.results.map((r) => r.code),
        [0, 0],
        String(exporter.results.find((r) => r.error)?.error),
      );
      assertSdkRecords(h);
    });
  }

  it('an export the buffers refuse (backpressure) fails in the SDK, which may retry it', async () => {
    const h = await start({}, async () => {
      throw new BackpressureError('buffer full', 2);
    });
    const exporter = recording(new ProtoExporter({ url: h.url, timeoutMillis: 3000 }));
    await sdkEmit(exporter, [{ body: 'x' }]);
    assert.equal(exporter.results[0]?.code, 1);
  });
});

/** A request of one resource (service.name svc) and one scope, with these records. */
function protoBody(
  records: ReturnType<typeof emptyLogRecord>[],
  resource: Record<string, string> = { 'service.name': 'svc' },
): Buffer {
  return otlpRequest(records, resource, { name: 'lib', version: '', attributes: {} });
}

function rec(body: unknown, extra: Partial<ReturnType<typeof emptyLogRecord>> = {}) {
  return { ...emptyLogRecord(), timeUnixNano: 1_700_000_000_000_000_001n, body: body as never, ...extra };
}

function post(url: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-protobuf', ...headers },
  });
}

async function statusMessage(res: Response): Promise<string> {
  const json = (res.headers.get('content-type') ?? '').includes('json');
  return decodeStatusMessage(new Uint8Array(await res.arrayBuffer()), json) ?? '';
}

describe('opentelemetry input over HTTP: answers', () => {
  it('answers 200 only once the records are durable in every routed buffer', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let emitted = 0;
    const h = await start({}, async () => {
      emitted += 1;
      await held;
    });
    let answered = false;
    const answer = post(h.url, protoBody([rec('a')])).then((res) => {
      answered = true;
      return res;
    });
    await waitFor(() => emitted === 1, { what: 'the emit' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(answered, false, 'no answer before the emit resolved');
    release();
    const res = await answer;
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-protobuf');
    assert.deepEqual(decodeResponse(new Uint8Array(await res.arrayBuffer()), false), {
      rejected: 0,
      message: '',
    });
  });

  it('gzip bodies; tag_key from the resource; resource and scope flattened with prefixes', async () => {
    const g = await start({
      tag_key: 'resource.service.name',
      resource_prefix: 'resource.',
      scope_prefix: 'scope.',
    });
    const res = await post(g.url, gzipSync(protoBody([rec({ msg: 'hi' })])), { 'content-encoding': 'gzip' });
    assert.equal(res.status, 200);
    const [entry] = g.entries();
    assert.equal(entry!.tag, 'svc');
    assert.deepEqual(entry!.record, { msg: 'hi', 'resource.service.name': 'svc', 'scope.name': 'lib' });
    assert.ok(entry!.time.equals(new EventTime(1_700_000_000, 1)));
  });

  it("tag_key with a nested path: $resource['service.name']", async () => {
    const h = await start({ tag_key: "$resource['service.name']" });
    assert.equal((await post(h.url, protoBody([rec('x')], { 'service.name': 'billing' }))).status, 200);
    assert.equal(h.batches[0]!.tag, 'billing');
  });

  it('a record over max_record_size is refused alone: 200 with partial_success', async () => {
    const h = await start({ max_record_size: 200 });
    const res = await post(h.url, protoBody([rec('small'), rec('x'.repeat(500)), rec('small too')]));
    assert.equal(res.status, 200);
    const partial = decodeResponse(new Uint8Array(await res.arrayBuffer()), false);
    assert.equal(partial.rejected, 1);
    assert.match(partial.message, /max_record_size \(200 bytes\)/);
    assert.deepEqual(
      h.entries().map((e) => e.record.log),
      ['small', 'small too'],
    );
  });

  it('JSON: partial_success as JSON, int64 and ids as OTLP/JSON writes them', async () => {
    const h = await start({ max_record_size: 300 });
    const request: OtlpResourceLogs[] = [
      {
        resource: { 'service.name': 'svc' },
        scopeLogs: [
          {
            scope: { name: 'lib', version: '2', attributes: {} },
            logRecords: [
              rec('ok', {
                traceId: Buffer.from(TRACE_ID, 'hex'),
                attributes: { big: 2n ** 62n, neg: -5, bin: Buffer.from([0xff, 0]) },
              }),
              rec('y'.repeat(400)),
            ],
          },
        ],
      },
    ];
    const res = await post(h.url, encodeJsonRequest(request), { 'content-type': 'application/json' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      partialSuccess: {
        rejectedLogRecords: '1',
        errorMessage: '1 log record was larger than max_record_size (300 bytes) once mapped to a record',
      },
    });
    const [entry] = h.entries();
    assert.equal(entry!.record.trace_id, TRACE_ID);
    assert.deepEqual(entry!.record.attributes, { big: 2n ** 62n, neg: -5, bin: Buffer.from([0xff, 0]) });
  });

  it('malformed protobuf and JSON: 400 with a google.rpc.Status saying why', async () => {
    const h = await start();
    const bad = await post(h.url, Buffer.from([0x0a, 0x10, 0x01]));
    assert.equal(bad.status, 400);
    assert.match(await statusMessage(bad), /invalid protobuf at byte \d+/);
    const badJson = await post(h.url, '{"resourceLogs": [', { 'content-type': 'application/json' });
    assert.equal(badJson.status, 400);
    assert.match(await statusMessage(badJson), /invalid JSON/);
    const wrongShape = await post(h.url, '{"resourceLogs": {}}', { 'content-type': 'application/json' });
    assert.equal(wrongShape.status, 400);
    assert.match(await statusMessage(wrongShape), /resourceLogs is not an array/);
    const badGzip = await post(h.url, Buffer.from('not gzip'), { 'content-encoding': 'gzip' });
    assert.equal(badGzip.status, 400);
    assert.equal(h.batches.length, 0);
  });

  it('an unsupported content-type is 415', async () => {
    const h = await start();
    const res = await post(h.url, 'x', { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.match(await statusMessage(res), /application\/x-protobuf or application\/json/);
  });

  it('metrics and traces are 404 with a clear reason; other paths too; GET is 405', async () => {
    const h = await start();
    const base = h.url.replace('/v1/logs', '');
    for (const path of ['/v1/metrics', '/v1/traces']) {
      const res = await post(base + path, protoBody([]));
      assert.equal(res.status, 404);
      assert.match(await statusMessage(res), /is not served: Estuary takes OpenTelemetry logs only/);
    }
    assert.equal((await post(`${base}/elsewhere`, 'x')).status, 404);
    assert.equal((await fetch(h.url)).status, 405);
  });

  it('backpressure is 503 with Retry-After (retryable for OTLP clients)', async () => {
    const h = await start({}, async () => {
      throw new BackpressureError('the buffer of out is full', 7);
    });
    const res = await post(h.url, protoBody([rec('x')]));
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.match(await statusMessage(res), /buffer of out is full/);
  });

  it('what Node refuses (malformed HTTP) is answered, counted and the connection closed; a declared body with no room is refused unread', async () => {
    const budget = new InflightBudget(1024);
    const h = await start({}, undefined, { inflight: budget });
    const raw = await RawHttp.open(h.input.httpPort!);
    await raw.write('NOT HTTP AT ALL\r\n\r\n');
    assert.equal((await raw.waitResponse()).status, 400);
    await raw.waitClosed();
    const counted = await h.metrics.inputRequests.get();
    assert.equal(counted.values.find((v) => v.labels.result === 'bad_request')?.value, 1);
    // Someone else holds most of the budget (alone, a request larger than all of it would be let in).
    assert.ok(budget.tryTake(1000));
    const big = await RawHttp.open(h.input.httpPort!);
    await big.sendHead('/v1/logs', { 'content-type': 'application/x-protobuf', 'content-length': 4096 });
    const refused = await big.waitResponse();
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.connection, 'close');
    await big.waitClosed();
    budget.release(1000);
    await waitFor(() => budget.bytes === 0, { what: 'the refused request’s lease given back' });
  });

  it('bearer tokens: 401 without the right one, 200 with it', async () => {
    const h = await start({ auth_tokens: ['s3cret'] });
    assert.equal((await post(h.url, protoBody([rec('x')]))).status, 401);
    assert.equal((await post(h.url, protoBody([rec('x')]), { authorization: 'Bearer nope' })).status, 401);
    assert.equal((await post(h.url, protoBody([rec('x')]), { authorization: 'Bearer s3cret' })).status, 200);
    assert.equal(h.batches.length, 1);
  });

  it('hostile bodies: too large (413), a gzip bomb (413), too deep (400), too many records (413)', async () => {
    const h = await start({ max_body_size: 4096, max_nesting_depth: 8, max_records: 3 });
    assert.equal((await post(h.url, Buffer.alloc(5000))).status, 413);
    const bomb = gzipSync(Buffer.alloc(4096 * 4 + 1));
    assert.ok(bomb.length < 4096);
    const bombed = await post(h.url, bomb, { 'content-encoding': 'gzip' });
    assert.equal(bombed.status, 413);
    assert.match(await statusMessage(bombed), /max_decompressed_size/);
    let deep: unknown = 'bottom';
    for (let i = 0; i < 10; i++) deep = [deep];
    const tooDeep = await post(h.url, protoBody([rec(deep)]));
    assert.equal(tooDeep.status, 400);
    assert.match(await statusMessage(tooDeep), /max_nesting_depth \(8\)/);
    const many = await post(h.url, protoBody([rec('1'), rec('2'), rec('3'), rec('4')]));
    assert.equal(many.status, 413);
    assert.match(await statusMessage(many), /max_records is 3/);
    // JSON nesting is checked on the bytes, before JSON.parse builds anything.
    const deepJson = `${'['.repeat(200)}${']'.repeat(200)}`;
    const jsonDeep = await post(h.url, deepJson, { 'content-type': 'application/json' });
    assert.equal(jsonDeep.status, 400);
    assert.match(await statusMessage(jsonDeep), /max_nesting_depth \(8\) allows: at byte \d+/);
    assert.equal(h.batches.length, 0);
    // Within the limit in OTLP/JSON's own terms: a kvlist body nested 7 deep passes.
    let nested: AnyValue = 'bottom';
    for (let i = 0; i < 7; i++) nested = { k: nested };
    const request: OtlpResourceLogs[] = [
      {
        resource: {},
        scopeLogs: [{ scope: { name: '', version: '', attributes: {} }, logRecords: [rec(nested)] }],
      },
    ];
    const ok = await post(h.url, encodeJsonRequest(request), { 'content-type': 'application/json' });
    assert.equal(ok.status, 200, await statusMessage(ok));
    assert.equal(h.batches.length, 1);
  });

  it('what decoding holds is taken from service.max_inflight_bytes: 413 when it never fits, 503 while full', async () => {
    const budget = new InflightBudget(64 * 1024);
    const h = await start({}, undefined, { inflight: budget });
    const records = Array.from({ length: 400 }, (_, i) => rec({ i, pad: 'p'.repeat(100) }));
    const res = await post(h.url, protoBody(records));
    assert.equal(res.status, 413);
    assert.match(await statusMessage(res), /service\.max_inflight_bytes/);
    // Empty messages cost objects too: 4,000 empty ResourceLogs in 8 KB of body.
    const empties = await post(h.url, Buffer.from('0a00'.repeat(4000), 'hex'));
    assert.equal(empties.status, 413);
    // Someone else holds the budget: a request that would fit alone is told to retry.
    assert.ok(budget.tryTake(60 * 1024));
    const busy = await post(h.url, protoBody([rec('x'.repeat(8000))]));
    assert.equal(busy.status, 503);
    assert.ok(busy.headers.get('retry-after'));
    budget.release(60 * 1024);
    assert.equal((await post(h.url, protoBody([rec('x')]))).status, 200);
    await waitFor(() => budget.bytes === 0, { what: 'every lease given back' });
  });

  it('protobuf corner cases: unknown fields skipped, negative int64, a bytes body, int64 past 2^53', async () => {
    const h = await start();
    const w = new ProtoWriter();
    const rl = w.begin(1);
    w.string(99, 'an unknown field'); // skipped
    const sl = w.begin(2);
    const r = w.begin(2);
    writeLogRecord(w, rec(undefined, { attributes: { n: -1, huge: -(2n ** 60n) } }));
    const body = w.begin(5);
    writeAnyValue(w, Buffer.from([1, 2, 3]));
    w.end(body);
    w.end(r);
    w.end(sl);
    w.end(rl);
    assert.equal((await post(h.url, w.finish())).status, 200);
    const [entry] = h.entries();
    assert.deepEqual(entry!.record, {
      log: Buffer.from([1, 2, 3]),
      attributes: { n: -1, huge: -(2n ** 60n) },
    });
  });
});
