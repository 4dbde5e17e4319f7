/**
 * OTLP/HTTP load generator: protobuf ExportLogsServiceRequest bodies of `--batch` log records
 * POSTed to `/v1/logs` on keep-alive connections, as an OpenTelemetry SDK's batch processor
 * or a Collector's `otlphttp` exporter sends them: one resource (`service.name` and the SDK's
 * `telemetry.sdk.*` attributes), one scope, and per log record a time, an observed time, a
 * severity, three attributes and a **map body** holding bench/records.ts's payload (so the
 * record that arrives has the same fields as the forward scenarios' records, at its top).
 *
 *   node bench/load/otlp.ts --port 4318 [--batch 1000] [--connections 4] [--records 0]
 *        [--rate 0] [--duration 10s]
 *
 * The bodies are encoded once, up front (8 distinct ones, cycled), with the encoder the
 * input's tests use (test/support/otlp-request.ts); the records' times are those of the
 * start, so no latency is measured. Closed loop by default (each connection posts again when
 * answered); `--rate N` is open loop. `--records N` stops after N records (whole requests),
 * `--duration` then only caps the run. A 429, 502, 503 or 504 answer, or a failed connection,
 * is retried after 50 ms until the deadline, as OTLP exporters retry them (`retried`); another
 * answer is a failure.
 *
 * Prints one JSON line when done; under `fork` also sends it to the parent.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/core/units.ts';
import type { KvList, OtlpLogRecord } from '../../src/inputs/opentelemetry/otlp.ts';
import { otlpRequest } from '../../test/support/otlp-request.ts';
import { recordAt } from '../records.ts';
import type { LoadResult } from './forward.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    batch: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '4' },
    records: { type: 'string', default: '0' },
    rate: { type: 'string', default: '0' },
    duration: { type: 'string', default: '10s' },
  },
});
if (!values.port) throw new Error('--port is required');
const url = `http://${values.host}:${values.port}/v1/logs`;
const batch = Number(values.batch);
const connections = Number(values.connections);
const records = Number(values.records);
if (!Number.isInteger(records) || records < 0)
  throw new Error(`--records: expected a count, got ${values.records}`);
const rate = Number(values.rate);
const durationMs = parseDuration(values.duration!) ?? 10_000;

const RESOURCE: KvList = {
  'service.name': 'bench-app',
  'service.version': '1.4.2',
  'service.instance.id': '6f1c2a1e-0d7b-4e4b-9a55-2c8f1d3b7e10',
  'host.name': 'bench-host',
  'telemetry.sdk.name': 'opentelemetry',
  'telemetry.sdk.language': 'nodejs',
  'telemetry.sdk.version': '2.0.1',
};
const SCOPE = { name: 'bench-logger', version: '1.0.0', attributes: {} };
const BODIES = 8;

const startNs = BigInt(Date.now()) * 1_000_000n;
function logRecord(i: number): OtlpLogRecord {
  const time = startNs + BigInt(i) * 1000n;
  return {
    timeUnixNano: time,
    observedTimeUnixNano: time,
    severityNumber: 9,
    severityText: 'INFO',
    body: recordAt(i) as KvList,
    attributes: { 'code.function': 'handleRequest', 'thread.id': i % 16, 'log.source': 'bench' },
    flags: 0,
    traceId: new Uint8Array(0),
    spanId: new Uint8Array(0),
    eventName: '',
  };
}
const bodies = Array.from({ length: BODIES }, (_, b) =>
  otlpRequest(
    Array.from({ length: batch }, (_, j) => logRecord(b * batch + j)),
    RESOURCE,
    SCOPE,
  ),
);
let cursor = 0;

const result: LoadResult = { sent: 0, acked: 0, failed: 0, seconds: 0 };
let retried = 0;
const started = performance.now();
const deadline = started + durationMs;
/** post counts a request as sent before it awaits, so concurrent senders never overshoot. */
const more = () => performance.now() < deadline && (records === 0 || result.sent < records);
const RETRY_PAUSE_MS = 50;
const RETRYABLE = new Set([429, 502, 503, 504]);

async function post(): Promise<void> {
  const body = bodies[cursor++ % bodies.length]!;
  result.sent += batch;
  for (;;) {
    let retry: boolean;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body,
      });
      await res.arrayBuffer();
      if (res.ok) {
        result.acked += batch;
        return;
      }
      retry = RETRYABLE.has(res.status);
    } catch {
      retry = true;
    }
    if (!retry || performance.now() >= deadline) {
      result.failed += batch;
      return;
    }
    retried += batch;
    await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
  }
}

if (rate > 0) {
  // Ticks of 10 ms; each sends what the rate owes since the start.
  const inflight: Promise<void>[] = [];
  while (more()) {
    const owed = Math.floor(((performance.now() - started) / 1000) * rate) - result.sent;
    for (let n = 0; n < Math.ceil(owed / batch) && more(); n++) inflight.push(post());
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
} else {
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (more()) await post();
    }),
  );
}
result.seconds = (performance.now() - started) / 1000;
result.retried = retried;
process.stdout.write(`${JSON.stringify(result)}\n`);
if (process.send) process.send(result);
