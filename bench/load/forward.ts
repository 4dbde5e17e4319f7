/**
 * Forward load generator: Fluent Bit-like senders (PackedForward, `--batch` records per
 * message) or Docker-log-driver-like ones (Message mode, one record per message), with acks.
 * Each record's EventTime is its send time, so a sink can measure end-to-end latency.
 *
 * Closed loop (default): each connection keeps `--window` messages in flight and sends the
 * next when one is acked. Open loop: `--rate N` records/s in total, whatever the acks do.
 *
 *   node bench/load/forward.ts --port 24224 [--mode packed|message] [--batch 1000]
 *        [--connections 4] [--window 4] [--rate 0] [--duration 10s] [--no-ack]
 *
 * Prints one JSON line when done (sent, acked, failed, seconds); under `fork` it also
 * sends that object to the parent.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { EventTime } from '../../src/core/event-time.ts';
import { eventTimeBytes, pack } from '../../src/core/msgpack.ts';
import { parseDuration } from '../../src/core/units.ts';
import { ForwardConnection } from '../../src/outputs/forward/client.ts';
import type { ForwardMessage } from '../../src/outputs/forward/encode.ts';
import { encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { recordAt } from '../records.ts';

export interface LoadResult {
  sent: number;
  acked: number;
  failed: number;
  seconds: number;
}

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    mode: { type: 'string', default: 'packed' },
    batch: { type: 'string', default: '1000' },
    connections: { type: 'string', default: '4' },
    window: { type: 'string', default: '4' },
    rate: { type: 'string', default: '0' },
    duration: { type: 'string', default: '10s' },
    tag: { type: 'string', default: 'bench.app' },
    'no-ack': { type: 'boolean', default: false },
  },
});
if (!values.port) throw new Error('--port is required');
const port = Number(values.port);
const mode = values.mode === 'message' ? 'message' : 'packed';
const batch = mode === 'message' ? 1 : Number(values.batch);
const connections = Number(values.connections);
const windowSize = Number(values.window);
const rate = Number(values.rate);
const durationMs = parseDuration(values.duration!) ?? 10_000;
const ack = !values['no-ack'];
const tagBytes = pack(values.tag);

// Records are encoded once; each message only stamps fresh times in front of them.
const RECORDS = Array.from({ length: 4096 }, (_, i) => pack(recordAt(i)));
let cursor = 0;

function message(): ForwardMessage {
  const chunk = ack ? randomBytes(16).toString('base64') : undefined;
  const now = eventTimeBytes(EventTime.now());
  if (mode === 'message') {
    const record = RECORDS[cursor++ % RECORDS.length]!;
    const option = chunk === undefined ? [] : [pack({ chunk })];
    return {
      bytes: Buffer.concat([Buffer.from([chunk ? 0x94 : 0x93]), tagBytes, now, record, ...option]),
      chunk,
      count: 1,
    };
  }
  const parts: Buffer[] = [];
  for (let i = 0; i < batch; i++) parts.push(Buffer.from([0x92]), now, RECORDS[cursor++ % RECORDS.length]!);
  return {
    bytes: encodePackedForward(values.tag!, Buffer.concat(parts), { size: batch, chunk }),
    chunk,
    count: batch,
  };
}

const result: LoadResult = { sent: 0, acked: 0, failed: 0, seconds: 0 };
const server = { host: values.host!, port, weight: 1, standby: false };
const settings = { connectTimeoutMs: 10_000, ackTimeoutMs: 60_000, tls: undefined, credentials: undefined };
const started = performance.now();
const deadline = started + durationMs;

async function sendOne(conn: ForwardConnection): Promise<void> {
  const m = message();
  result.sent += m.count;
  try {
    await conn.send(m);
    result.acked += m.count;
  } catch {
    result.failed += m.count;
  }
}

async function closedLoop(conn: ForwardConnection): Promise<void> {
  await Promise.all(
    Array.from({ length: windowSize }, async () => {
      while (performance.now() < deadline && conn.alive) await sendOne(conn);
    }),
  );
}

async function openLoop(conns: ForwardConnection[]): Promise<void> {
  // Ticks of 10 ms; each sends what the rate owes since the start, spread over connections.
  const inflight: Promise<void>[] = [];
  let next = 0;
  while (performance.now() < deadline) {
    const owed = Math.floor(((performance.now() - started) / 1000) * rate) - result.sent;
    for (let n = 0; n < Math.ceil(owed / batch); n++) inflight.push(sendOne(conns[next++ % conns.length]!));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
}

const conns = await Promise.all(
  Array.from({ length: connections }, () =>
    ForwardConnection.open(server, settings, new AbortController().signal),
  ),
);
if (rate > 0) await openLoop(conns);
else await Promise.all(conns.map(closedLoop));
result.seconds = (performance.now() - started) / 1000;
for (const c of conns) c.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
if (process.send) process.send(result);
