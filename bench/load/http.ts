/**
 * HTTP load generator: JSON arrays of `--batch` records per POST on keep-alive connections,
 * like Fluent Bit's out_http. Each record carries its send time in `time` (float seconds),
 * which Estuary's http input takes as the event time, so a sink can measure latency.
 *
 *   node bench/load/http.ts --port 9880 [--batch 100] [--connections 16] [--rate 0] [--duration 10s]
 *
 * Closed loop by default (each connection posts again when answered); `--rate N` is open loop.
 * Prints one JSON line when done; under `fork` also sends it to the parent.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/core/units.ts';
import { recordAt } from '../records.ts';
import type { LoadResult } from './forward.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    batch: { type: 'string', default: '100' },
    connections: { type: 'string', default: '16' },
    rate: { type: 'string', default: '0' },
    duration: { type: 'string', default: '10s' },
    tag: { type: 'string', default: 'bench.app' },
  },
});
if (!values.port) throw new Error('--port is required');
const url = `http://${values.host}:${values.port}/${values.tag}`;
const batch = Number(values.batch);
const rate = Number(values.rate);
const durationMs = parseDuration(values.duration!) ?? 10_000;

// Serialized once; only the time field changes per request.
const records = Array.from({ length: batch }, (_, i) => JSON.stringify(recordAt(i)).slice(1, -1));

function body(): string {
  const time = Date.now() / 1000;
  return `[${records.map((r) => `{"time":${time},${r}}`).join(',')}]`;
}

const result: LoadResult = { sent: 0, acked: 0, failed: 0, seconds: 0 };
const started = performance.now();
const deadline = started + durationMs;

async function post(): Promise<void> {
  result.sent += batch;
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body(),
    });
    await res.arrayBuffer();
    if (res.ok) result.acked += batch;
    else result.failed += batch;
  } catch {
    result.failed += batch;
  }
}

if (rate > 0) {
  const inflight: Promise<void>[] = [];
  while (performance.now() < deadline) {
    const owed = Math.floor(((performance.now() - started) / 1000) * rate) - result.sent;
    for (let n = 0; n < Math.ceil(owed / batch); n++) inflight.push(post());
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
} else {
  await Promise.all(
    Array.from({ length: Number(values.connections) }, async () => {
      while (performance.now() < deadline) await post();
    }),
  );
}
result.seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify(result)}\n`);
if (process.send) process.send(result);
