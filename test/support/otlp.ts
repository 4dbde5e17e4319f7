import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import type { LogRecord as ApiLogRecord } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordExporter, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { pino } from 'pino';
import { type Batch, decodeEntries } from '../../src/core/batch.ts';
import type { Entry } from '../../src/core/entry.ts';
import type { InflightBudget } from '../../src/core/inflight.ts';
import type { Emit } from '../../src/inputs/input.ts';
import { type OtlpInput, opentelemetryInput } from '../../src/inputs/opentelemetry/index.ts';
import { Metrics } from '../../src/metrics/registry.ts';

/** The request builder lives beside this file so the bench can import it alone. */
export { otlpRequest } from './otlp-request.ts';

/** An OTLP input on free ports, its batches, metrics and log lines. */
export interface OtlpHarness {
  input: OtlpInput;
  /** `http://127.0.0.1:<port>/v1/logs`. */
  url: string;
  grpcPort: number | undefined;
  batches: Batch[];
  metrics: Metrics;
  logs: Record<string, unknown>[];
  /** The entries of every batch so far, with their tags. */
  entries(): (Entry & { tag: string })[];
}

export async function startOtlpInput(
  options: Record<string, unknown> = {},
  emit?: Emit,
  extra: { inflight?: InflightBudget; configDir?: string } = {},
): Promise<OtlpHarness> {
  const metrics = new Metrics();
  const batches: Batch[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const config = opentelemetryInput.schema.parse({
    listen: '127.0.0.1',
    port: 0,
    grpc_port: 0,
    protocols: ['http'],
    ...options,
  });
  const input = opentelemetryInput.create(config, {
    id: 'otlp',
    logger,
    metrics,
    configDir: extra.configDir ?? process.cwd(),
    ...(extra.inflight && { inflight: extra.inflight }),
  }) as OtlpInput;
  await input.start(
    emit ??
      (async (batch) => {
        batches.push(batch);
      }),
  );
  const scheme = options.tls ? 'https' : 'http';
  return {
    input,
    url: `${scheme}://127.0.0.1:${input.httpPort}/v1/logs`,
    grpcPort: input.grpcPort,
    batches,
    metrics,
    logs,
    entries: () => batches.flatMap((b) => decodeEntries(b.payload).map((e) => ({ ...e, tag: b.tag }))),
  };
}

/** An exporter that records what each export came to (the SDK's processors swallow it). */
export function recording(
  exporter: LogRecordExporter,
): LogRecordExporter & { results: { code: number; error?: Error }[] } {
  const results: { code: number; error?: Error }[] = [];
  return {
    results,
    export(logs, callback) {
      exporter.export(logs, (result) => {
        results.push(result);
        callback(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
}

/**
 * Emits `records` through the OpenTelemetry JS SDK (a LoggerProvider with `service.name`
 * `checkout` and scope `cart@1.2.3`) into `exporter`, one export per record, and waits for
 * every export to finish.
 */
export async function sdkEmit(exporter: LogRecordExporter, records: ApiLogRecord[]): Promise<void> {
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'checkout', 'deployment.environment': 'test' }),
    processors: [new SimpleLogRecordProcessor({ exporter })],
  });
  const logger = provider.getLogger('cart', '1.2.3', { attributes: { team: 'payments' } });
  for (const record of records) logger.emit(record);
  await provider.forceFlush();
  await provider.shutdown();
}

/** A request as the fake collector got it: headers, and the body with gzip undone. */
export interface CollectorRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface CollectorReply {
  status: number;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/**
 * An OTLP/HTTP endpoint on a free port of 127.0.0.1 that keeps each request's bytes and
 * answers as `reply` says (default: 200 and an empty ExportLogsServiceResponse).
 */
export async function fakeCollector(
  reply: (request: CollectorRequest) => CollectorReply = () => ({
    status: 200,
    headers: { 'content-type': 'application/x-protobuf' },
  }),
) {
  const requests: CollectorRequest[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const raw = Buffer.concat(parts);
      const request = {
        headers: req.headers,
        body: req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw,
      };
      requests.push(request);
      const answer = reply(request);
      res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    requests,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/logs`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
