import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT_CONTEXT, SeverityNumber, trace } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import {
  decodeJsonRequest,
  decodeRequest,
  encodeResponse,
  type OtlpResourceLogs,
  parseOtlpJson,
} from '../../../src/inputs/opentelemetry/otlp.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { type OtlpOutput, opentelemetryOutput } from '../../../src/outputs/opentelemetry/index.ts';
import type { Chunk } from '../../../src/outputs/output.ts';
import {
  type CollectorRequest,
  fakeCollector,
  type OtlpHarness,
  recording,
  sdkEmit,
  startOtlpInput,
} from '../../support/otlp.ts';
import { selfSignedCert } from '../../support/tls.ts';

const NO_DEADLINE = { signal: new AbortController().signal };
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const close of closers) await close();
});

function output(options: Record<string, unknown>): OtlpOutput {
  const out = opentelemetryOutput.create(opentelemetryOutput.schema.parse(options), {
    id: 'otlp-out',
    logger: silentLogger(),
    metrics: new Metrics(),
    configDir: process.cwd(),
  }) as OtlpOutput;
  closers.push(() => out.stop());
  return out;
}

async function input(): Promise<OtlpHarness> {
  const h = await startOtlpInput();
  closers.push(() => h.input.stop());
  return h;
}

/** A chunk of what an input emitted. */
function chunkOf(h: OtlpHarness): Chunk {
  return makeChunk('c1', h.batches, 0);
}

async function collector(...args: Parameters<typeof fakeCollector>) {
  const c = await fakeCollector(...args);
  closers.push(c.close);
  return c;
}

/** A request the collector got, decoded again. */
function decodeSeen(request: CollectorRequest): OtlpResourceLogs[] {
  const limits = { maxDepth: 100, maxRecords: 1e6, tooMany: () => new Error('many'), charge: () => {} };
  if (String(request.headers['content-type']).includes('json'))
    return decodeJsonRequest(parseOtlpJson(request.body.toString('utf8')), limits);
  return decodeRequest(request.body, limits);
}

describe('opentelemetry output', () => {
  it('OTLP → Estuary → OTLP: attributes, severity, ids, resource, scope and nanosecond time come back as sent', async () => {
    const first = await input();
    const ctx = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
    });
    const exporter = recording(new OTLPLogExporter({ url: first.url }));
    await sdkEmit(exporter, [
      {
        timestamp: [1_700_000_000, 999_999_999],
        severityNumber: SeverityNumber.ERROR,
        severityText: 'ERROR',
        body: 'card declined',
        attributes: { code: 402, nested: { a: [1, 'two', true] } },
        context: ctx,
        eventName: 'payment.failed',
      },
      { timestamp: [1_700_000_001, 7], body: { msg: 'a map body', n: 1.5 } },
    ]);
    assert.equal(first.entries().length, 2);
    const second = await input();
    const out = output({ endpoint: second.url });
    await out.start();
    assert.equal(await out.write(chunkOf(first), NO_DEADLINE), undefined);
    // The SDK exported the two records in two requests at once: either may have come first.
    const byTime = (a: { time: EventTime }, b: { time: EventTime }) => a.time.compare(b.time);
    const before = first.entries().sort(byTime);
    const afterTrip = second.entries().sort(byTime);
    assert.deepEqual(
      afterTrip.map((e) => e.record),
      before.map((e) => e.record),
    );
    assert.deepEqual(
      afterTrip.map((e) => e.time.toIso()),
      ['2023-11-14T22:13:20.999999999Z', '2023-11-14T22:13:21.000000007Z'],
    );
    assert.equal(afterTrip[0]!.record.event_name, 'payment.failed');
  });

  it('groups records by resource, then scope; resource_keys move record fields into the resource', async () => {
    const c = await collector();
    const out = output({
      endpoint: c.url,
      resource_keys: { 'k8s.namespace.name': "$kubernetes['namespace_name']" },
    });
    const time = new EventTime(1_700_000_000, 1);
    const entries = [
      { time, record: { log: 'a1', kubernetes: { namespace_name: 'a', pod_name: 'p1' } } },
      { time, record: { log: 'b1', kubernetes: { namespace_name: 'b' } } },
      { time, record: { log: 'a2', kubernetes: { namespace_name: 'a' }, scope: { name: 'lib' } } },
      { time, record: { message: 'from forward', level: 'info' } },
    ];
    assert.equal(await out.write(makeChunk('c', [makeBatch('kube.x', entries)], 0), NO_DEADLINE), undefined);
    assert.equal(c.requests.length, 1);
    assert.equal(c.requests[0]!.headers['content-encoding'], 'gzip');
    const request = decodeSeen(c.requests[0]!);
    const shape = request.map((rl) => ({
      resource: rl.resource,
      scopes: rl.scopeLogs.map((sl) => ({ scope: sl.scope.name, bodies: sl.logRecords.map((r) => r.body) })),
    }));
    assert.deepEqual(shape, [
      {
        resource: { 'k8s.namespace.name': 'a' },
        scopes: [
          { scope: '', bodies: [{ log: 'a1', kubernetes: { pod_name: 'p1' } }] },
          { scope: 'lib', bodies: [{ log: 'a2', kubernetes: {} }] },
        ],
      },
      {
        resource: { 'k8s.namespace.name': 'b' },
        scopes: [{ scope: '', bodies: [{ log: 'b1', kubernetes: {} }] }],
      },
      { resource: {}, scopes: [{ scope: '', bodies: [{ message: 'from forward', level: 'info' }] }] },
    ]);
  });

  it('JSON without compression, headers and a bearer token', async () => {
    const c = await collector(() => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: '{}',
    }));
    const out = output({
      endpoint: c.url,
      encoding: 'json',
      compression: 'none',
      headers: { 'x-api-key': 'k1' },
      bearer_token: 'tok',
    });
    const entries = [{ time: new EventTime(1_700_000_000, 5), record: { log: 'x', severity_number: 9 } }];
    assert.equal(await out.write(makeChunk('c', [makeBatch('t', entries)], 0), NO_DEADLINE), undefined);
    const seen = c.requests[0]!;
    assert.equal(seen.headers['content-type'], 'application/json');
    assert.equal(seen.headers['content-encoding'], undefined);
    assert.equal(seen.headers['x-api-key'], 'k1');
    assert.equal(seen.headers.authorization, 'Bearer tok');
    const [record] = decodeSeen(seen)[0]!.scopeLogs[0]!.logRecords;
    assert.equal(record!.body, 'x');
    assert.equal(record!.severityNumber, 9);
    assert.equal(record!.timeUnixNano, 1_700_000_000_000_000_005n);
    assert.match(seen.body.toString(), /"timeUnixNano":"1700000000000000005"/);
  });

  it('partial_success: the request’s records are dead-lettered with the collector’s words', async () => {
    const c = await collector(() => ({
      status: 200,
      headers: { 'content-type': 'application/x-protobuf' },
      body: encodeResponse({ rejected: 1, message: 'attribute too long' }, false),
    }));
    const out = output({ endpoint: c.url });
    const entries = [0, 1, 2].map((i) => ({
      time: new EventTime(1_700_000_000, i),
      record: { log: `r${i}` },
    }));
    const result = await out.write(makeChunk('c', [makeBatch('t', entries)], 0), NO_DEADLINE);
    assert.equal(result?.reject?.length, 3);
    assert.match(result!.reject![0]!.reason, /refused 1 of the 3 log records .*: attribute too long/);
  });

  it('a 400 with a google.rpc.Status rejects, quoting its message; 502/504 retry after Retry-After', async () => {
    const status = Buffer.from([0x08, 0x03, 0x12, 0x07, ...Buffer.from('bad ids')]);
    const c = await collector(() => ({
      status: 400,
      headers: { 'content-type': 'application/x-protobuf' },
      body: status,
    }));
    const out = output({ endpoint: c.url });
    const chunk = makeChunk('c', [makeBatch('t', [{ time: new EventTime(1, 0), record: { log: 'x' } }])], 0);
    const rejected = await out.write(chunk, NO_DEADLINE);
    assert.match(rejected!.reject![0]!.reason, /400: bad ids/);
    for (const code of [502, 504]) {
      const busy = await collector(() => ({ status: code, headers: { 'retry-after': '3' } }));
      await assert.rejects(
        output({ endpoint: busy.url }).write(chunk, NO_DEADLINE),
        (err: Error & { retryAfterMs?: number }) => {
          assert.equal(err.name, 'RetryableError');
          assert.equal(err.retryAfterMs, 3000);
          return true;
        },
      );
    }
  });

  it('TLS: a collector whose certificate ca_file vouches for takes the records; without it the output halts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-otlp-out-tls-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const { cert, key } = selfSignedCert(dir);
    const collector = await startOtlpInput({ tls: { cert_file: cert, key_file: key } });
    closers.push(() => collector.input.stop());
    const chunk = makeChunk(
      'c',
      [makeBatch('t', [{ time: new EventTime(1, 2), record: { log: 'over tls' } }])],
      0,
    );
    const trusted = output({ endpoint: collector.url, tls: { ca_file: cert } });
    assert.equal(await trusted.write(chunk, NO_DEADLINE), undefined);
    assert.equal(collector.entries()[0]!.record.log, 'over tls');
    await assert.rejects(output({ endpoint: collector.url }).write(chunk, NO_DEADLINE), {
      name: 'HaltError',
    });
  });

  it('a bare endpoint gets /v1/logs', () => {
    const config = opentelemetryOutput.schema.parse({ endpoint: 'https://collector:4318' }) as {
      endpoint: string;
    };
    assert.equal(config.endpoint, 'https://collector:4318/v1/logs');
    assert.throws(() => opentelemetryOutput.schema.parse({ endpoint: 'http://u:p@c:4318' }), /credentials/);
  });
});
