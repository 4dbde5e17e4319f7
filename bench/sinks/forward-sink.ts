/**
 * A forward receiver that keeps nothing: it counts records, acks chunks, and measures
 * end-to-end latency as (receipt time − the record's EventTime), which the load generator
 * set at send time. It understands what forward outputs send to a downstream aggregator:
 * PackedForward (gzip too), Forward and Message modes.
 *
 *   node bench/sinks/forward-sink.ts --port 24225
 *
 * Standalone it prints a JSON line of stats every second; under `fork` it answers the
 * parent's 'stats' message with the same object.
 */
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { EventTime } from '../../src/core/event-time.ts';
import { pack, unpackr } from '../../src/core/msgpack.ts';
import { SinkCounter } from './stats.ts';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
});
const counter = new SinkCounter();

function observe(time: unknown, n: number): void {
  counter.observe(time instanceof EventTime || typeof time === 'number' ? time : undefined, n);
}

function handle(socket: Socket, message: unknown): void {
  if (!Array.isArray(message)) return;
  const [, second, third, fourth] = message as unknown[];
  let option: unknown;
  if (second instanceof Uint8Array || typeof second === 'string') {
    // PackedForward: entries as one msgpack stream; the first entry's time stands for all.
    option = third;
    let raw = typeof second === 'string' ? Buffer.from(second, 'binary') : Buffer.from(second);
    if ((option as { compressed?: string } | undefined)?.compressed === 'gzip') raw = gunzipSync(raw);
    const entries = unpackr.unpackMultiple(raw) as unknown[][];
    const head = entries[0]?.[0];
    observe(Array.isArray(head) ? head[0] : head, entries.length);
  } else if (Array.isArray(second)) {
    option = third;
    const entries = second as unknown[][];
    observe(entries[0]?.[0], entries.length);
  } else {
    option = fourth;
    observe(second, 1);
  }
  const chunk = (option as { chunk?: unknown } | undefined)?.chunk;
  if (typeof chunk === 'string') socket.write(pack({ ack: chunk }));
}

const server = createServer((socket) => {
  let buffered = Buffer.alloc(0);
  socket.on('data', (data) => {
    buffered = buffered.length === 0 ? data : Buffer.concat([buffered, data]);
    let values: unknown[];
    try {
      values = unpackr.unpackMultiple(buffered) as unknown[];
      buffered = Buffer.alloc(0);
    } catch (err) {
      const e = err as { incomplete?: boolean; lastPosition?: number; values?: unknown[] };
      if (!e.incomplete) {
        socket.destroy();
        return;
      }
      values = e.values ?? [];
      buffered = buffered.subarray(e.lastPosition ?? 0);
    }
    for (const v of values) handle(socket, v);
  });
  socket.on('error', () => socket.destroy());
});

server.listen(Number(values.port ?? 24225), values.host, () => counter.report());
