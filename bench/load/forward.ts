/**
 * Forward load generator: Fluent Bit-like senders (PackedForward, `--batch` records per
 * message) or Docker-log-driver-like ones (Message mode, one record per message), with acks.
 * Each record's EventTime is its send time, so a sink can measure end-to-end latency.
 *
 * Closed loop (default): each connection keeps `--window` messages in flight and sends the
 * next when one is acked. Open loop: `--rate N` records/s in total, whatever the acks do.
 * `--records N` stops after N records (whole messages), `--duration` then only caps the run:
 * a fixed amount of work is what compares servers that ack faster than they write out.
 * A message whose connection fails is sent again on a new connection until the deadline.
 *
 *   node bench/load/forward.ts --port 24224 [--mode packed|message] [--batch 1000]
 *        [--connections 4] [--window 4] [--rate 0] [--duration 10s] [--records 0] [--no-ack]
 *        [--payload record|log]
 *
 * `--payload log` sends each record's payload as a JSON string under `log` (bench/records.ts).
 *
 * Prints one JSON line when done (sent, acked, failed, retried, seconds); under `fork` it also
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
import { logLineAt, recordAt } from '../records.ts';

export interface LoadResult {
  sent: number;
  acked: number;
  failed: number;
  /** Records sent again after their connection failed (forward only). */
  retried?: number;
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
    records: { type: 'string', default: '0' },
    tag: { type: 'string', default: 'bench.app' },
    'no-ack': { type: 'boolean', default: false },
    payload: { type: 'string', default: 'record' },
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
const records = Number(values.records);
if (!Number.isInteger(records) || records < 0)
  throw new Error(`--records: expected a count, got ${values.records}`);
if (values.payload !== 'record' && values.payload !== 'log')
  throw new Error(`--payload: record or log, got ${values.payload}`);
const payloadAt = values.payload === 'log' ? logLineAt : recordAt;
const tagBytes = pack(values.tag);

// Records are encoded once; each message only stamps fresh times in front of them.
const RECORDS = Array.from({ length: 4096 }, (_, i) => pack(payloadAt(i)));
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
let retried = 0;
const server = { host: values.host!, port, weight: 1, standby: false };
const settings = { connectTimeoutMs: 10_000, ackTimeoutMs: 60_000, tls: undefined, credentials: undefined };
const started = performance.now();
const deadline = started + durationMs;
/** sendOne counts a message as sent before it awaits, so concurrent senders never overshoot. */
const more = () => performance.now() < deadline && (records === 0 || result.sent < records);
const RETRY_PAUSE_MS = 50;

/**
 * One connection, opened again when the server drops it — Fluent Bit closes its clients
 * while its input is paused at Mem_Buf_Limit — so a send that failed is retried on the
 * next connection, as Fluent Bit's and Fluentd's out_forward retry a chunk.
 */
class Link {
  private current: Promise<ForwardConnection>;

  constructor() {
    this.current = this.open();
  }

  private open(): Promise<ForwardConnection> {
    const opening = ForwardConnection.open(server, settings, new AbortController().signal);
    // Handled here: a refused connect is seen by the sender that awaits it, or by none.
    opening.catch(() => {});
    return opening;
  }

  async get(): Promise<ForwardConnection> {
    const pending = this.current;
    const conn = await pending.catch(() => undefined);
    if (conn?.alive) return conn;
    // The first sender to find it dead opens the next; the others wait for that one.
    if (this.current === pending) this.current = this.open();
    return this.current;
  }

  close(): void {
    void this.current.then(
      (c) => c.close(),
      () => {},
    );
  }
}

async function sendOne(link: Link): Promise<void> {
  const m = message();
  result.sent += m.count;
  for (;;) {
    try {
      await (await link.get()).send(m);
      result.acked += m.count;
      return;
    } catch {
      if (performance.now() >= deadline) {
        result.failed += m.count;
        return;
      }
      retried += m.count;
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
  }
}

async function closedLoop(link: Link): Promise<void> {
  await Promise.all(
    Array.from({ length: windowSize }, async () => {
      while (more()) await sendOne(link);
    }),
  );
}

async function openLoop(links: Link[]): Promise<void> {
  // Ticks of 10 ms; each sends what the rate owes since the start, spread over connections.
  const inflight: Promise<void>[] = [];
  let next = 0;
  while (more()) {
    const owed = Math.floor(((performance.now() - started) / 1000) * rate) - result.sent;
    for (let n = 0; n < Math.ceil(owed / batch) && more(); n++)
      inflight.push(sendOne(links[next++ % links.length]!));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
}

const links = Array.from({ length: connections }, () => new Link());
await Promise.all(links.map((l) => l.get()));
if (rate > 0) await openLoop(links);
else await Promise.all(links.map(closedLoop));
result.seconds = (performance.now() - started) / 1000;
result.retried = retried;
for (const l of links) l.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
if (process.send) process.send(result);
