import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { SeverityNumber } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { BackpressureError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { decodeResponse, emptyLogRecord } from '../../../src/inputs/opentelemetry/otlp.ts';
import { type OtlpHarness, otlpRequest, recording, sdkEmit, startOtlpInput } from '../../support/otlp.ts';
import { selfSignedCert } from '../../support/tls.ts';

const running: OtlpHarness[] = [];
const dir = mkdtempSync(join(tmpdir(), 'estuary-otlp-grpc-'));
after(async () => {
  await Promise.all(running.map((h) => h.input.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function start(...args: Parameters<typeof startOtlpInput>): Promise<OtlpHarness> {
  const h = await startOtlpInput(...args);
  running.push(h);
  return h;
}

const identity = (b: Buffer) => b;

/** One raw unary call, as any gRPC client makes it. */
function call(port: number, path: string, body: Buffer, metadata = new Metadata()): Promise<Buffer> {
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      path,
      identity,
      identity,
      body,
      metadata,
      (err: ServiceError | null, value?: Buffer) => {
        client.close();
        if (err) reject(err);
        else resolve(value!);
      },
    );
  });
}

const EXPORT = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';

function request(bodies: string[]): Buffer {
  return otlpRequest(
    bodies.map((body) => ({ ...emptyLogRecord(), timeUnixNano: 1_700_000_000_000_000_007n, body })),
  );
}

describe('opentelemetry input over gRPC', () => {
  it('exporter-logs-otlp-grpc: records mapped, nanosecond time', async () => {
    const h = await start({ protocols: ['grpc'] });
    assert.equal(h.input.httpPort, undefined, 'no HTTP listener when only grpc is asked for');
    const exporter = recording(new OTLPLogExporter({ url: `http://127.0.0.1:${h.grpcPort}` }));
    await sdkEmit(exporter, [
      {
        timestamp: [1_700_000_000, 5],
        severityNumber: SeverityNumber.ERROR,
        body: 'boom',
        attributes: { k: 'v' },
      },
    ]);
    assert.deepEqual(
      exporter.results.map((r) => r.code),
      [0],
      String(exporter.results[0]?.error),
    );
    const [entry] = h.entries();
    assert.ok(entry!.time.equals(new EventTime(1_700_000_000, 5)));
    assert.equal(entry!.record.log, 'boom');
    assert.equal(entry!.record.severity_number, 17);
    assert.deepEqual(entry!.record.attributes, { k: 'v' });
    assert.equal((entry!.record.resource as Record<string, unknown>)['service.name'], 'checkout');
  });

  it('partial_success for a record over max_record_size; UNAVAILABLE on backpressure', async () => {
    const h = await start({ protocols: ['grpc'], max_record_size: 200 });
    const answer = await call(h.grpcPort!, EXPORT, request(['a', 'b'.repeat(400)]));
    assert.equal(decodeResponse(answer, false).rejected, 1);
    assert.equal(h.entries().length, 1);
    const full = await start({ protocols: ['grpc'] }, async () => {
      throw new BackpressureError('full', 4);
    });
    await assert.rejects(call(full.grpcPort!, EXPORT, request(['a'])), (err: ServiceError) => {
      assert.equal(err.code, status.UNAVAILABLE);
      // google.rpc.Status { code 14, message, details: [Any { RetryInfo { retry_delay { seconds: 4 } } }] }
      const details = err.metadata.get('grpc-status-details-bin')[0] as Buffer;
      assert.ok(details.includes('type.googleapis.com/google.rpc.RetryInfo'));
      assert.deepEqual([...details.subarray(-6)], [0x12, 0x04, 0x0a, 0x02, 0x08, 0x04]);
      return true;
    });
  });

  it('malformed: INVALID_ARGUMENT; traces and metrics: UNIMPLEMENTED with the reason; tokens: UNAUTHENTICATED', async () => {
    const h = await start({ protocols: ['grpc'], auth_tokens: ['t0k'] });
    const auth = new Metadata();
    auth.set('authorization', 'Bearer t0k');
    await assert.rejects(
      call(h.grpcPort!, EXPORT, Buffer.from([0x0a, 0x05]), auth),
      (err: ServiceError) => err.code === status.INVALID_ARGUMENT && /invalid protobuf/.test(err.details),
    );
    for (const service of ['trace.v1.TraceService', 'metrics.v1.MetricsService']) {
      await assert.rejects(
        call(h.grpcPort!, `/opentelemetry.proto.collector.${service}/Export`, Buffer.alloc(0), auth),
        (err: ServiceError) =>
          err.code === status.UNIMPLEMENTED && /OpenTelemetry logs only/.test(err.details),
      );
    }
    await assert.rejects(
      call(h.grpcPort!, EXPORT, request(['a'])),
      (err: ServiceError) => err.code === status.UNAUTHENTICATED,
    );
    await call(h.grpcPort!, EXPORT, request(['a']), auth);
    assert.equal(h.entries().length, 1);
  });

  it('a message over max_body_size is refused by grpc-js before decoding: RESOURCE_EXHAUSTED', async () => {
    const h = await start({ protocols: ['grpc'], max_body_size: 1024 });
    await assert.rejects(
      call(h.grpcPort!, EXPORT, request(['x'.repeat(2000)])),
      (err: ServiceError) => err.code === status.RESOURCE_EXHAUSTED,
    );
    assert.equal(h.batches.length, 0);
  });

  it('TLS on both listeners', async () => {
    const { cert, key } = selfSignedCert(dir);
    const h = await start({ protocols: ['http', 'grpc'], tls: { cert_file: cert, key_file: key } });
    const client = new Client(`localhost:${h.grpcPort}`, credentials.createSsl(readFileSync(cert)));
    const answer = await new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        EXPORT,
        identity,
        identity,
        request(['secure']),
        new Metadata(),
        (err, value?: Buffer) => {
          client.close();
          if (err) reject(err);
          else resolve(value!);
        },
      ),
    );
    assert.equal(answer.length, 0, 'full success: an empty ExportLogsServiceResponse');
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        h.url,
        { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, ca: readFileSync(cert) },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(request(['secure over https']));
    });
    assert.equal(status, 200);
    assert.deepEqual(
      h.entries().map((e) => e.record.log),
      ['secure', 'secure over https'],
    );
  });
});
