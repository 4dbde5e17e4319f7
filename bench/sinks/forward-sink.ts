/**
 * A forward receiver that keeps nothing: it counts records (PackedForward entries by a
 * structural skip, without building them), acks chunks, and measures
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
import { pack, unpack } from '../../src/core/msgpack.ts';
import { MsgpackFrameDecoder } from '../../src/protocol/forward/decoder.ts';
import { skipValue } from '../../src/protocol/forward/msgpack-scan.ts';
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
    // Count entries by skipping over them (no records built); decode only the first for its time.
    let count = 0;
    let firstEnd = 0;
    for (let p = 0; p < raw.length; count++) {
      p = skipValue(raw, p, raw.length, 64);
      if (count === 0) firstEnd = p;
    }
    const head = count > 0 ? (unpack(raw.subarray(0, firstEnd)) as unknown[])[0] : undefined;
    observe(Array.isArray(head) ? head[0] : head, count);
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
  const decoder = new MsgpackFrameDecoder({ maxMessageSize: 256 * 1024 * 1024, maxDepth: 64 });
  socket.on('data', (data) => {
    try {
      decoder.push(data, (frame) => handle(socket, unpack(frame)));
    } catch {
      socket.destroy();
    }
  });
  socket.on('error', () => socket.destroy());
});

server.listen(Number(values.port ?? 24225), values.host, () => counter.report());
