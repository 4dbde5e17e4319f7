/**
 * A forward receiver that keeps nothing: it counts records (PackedForward entries by a
 * structural skip, without building them; whether the sender wraps them in bin like Fluent
 * Bit and Estuary or in str like Fluentd), acks chunks, and measures
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
import {
  ARRAY,
  BIN,
  newHeader,
  readHeader,
  STR,
  skipValue,
} from '../../src/protocol/forward/msgpack-scan.ts';
import { SinkCounter } from './stats.ts';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } },
});
const counter = new SinkCounter();

function observe(time: unknown, n: number): void {
  counter.observe(time instanceof EventTime || typeof time === 'number' ? time : undefined, n);
}

const DEPTH = 64;
const h = newHeader();

/** The value at `pos` decoded, and where it ends. */
function valueAt(frame: Uint8Array, pos: number): { value: unknown; end: number } {
  const end = skipValue(frame, pos, frame.length, DEPTH);
  return { value: unpack(frame.subarray(pos, end)), end };
}

/** An entry's time: `time`, or Fluent Bit 5's `[time, metadata]`. */
function entryTime(entry: unknown): unknown {
  const head = Array.isArray(entry) ? entry[0] : undefined;
  return Array.isArray(head) ? head[0] : head;
}

/**
 * Reads the frame's layout in place, decoding only the option and one entry's time: the
 * PackedForward entries are a str (Fluentd) or bin (Fluent Bit) of raw msgpack, which a
 * decoder would turn into a UTF-8 string and corrupt.
 */
function handle(socket: Socket, frame: Uint8Array): void {
  const end = frame.length;
  let p = readHeader(frame, 0, end, h);
  if (h.type !== ARRAY || h.length < 2) return;
  const items = h.length;
  p = skipValue(frame, p, end, DEPTH); // the tag
  const second = p;
  p = readHeader(frame, p, end, h);
  if (h.type === STR || h.type === BIN) {
    // PackedForward: entries as one msgpack stream; the first entry's time stands for all.
    const packedEnd = p + h.length;
    const option = items >= 3 ? valueAt(frame, packedEnd).value : undefined;
    let raw = frame.subarray(p, packedEnd);
    if ((option as { compressed?: string } | undefined)?.compressed === 'gzip') raw = gunzipSync(raw);
    let count = 0;
    for (let q = 0; q < raw.length; count++) q = skipValue(raw, q, raw.length, DEPTH);
    observe(count > 0 ? entryTime(valueAt(raw, 0).value) : undefined, count);
    ack(socket, option);
  } else if (h.type === ARRAY) {
    // Forward: an array of entries.
    const count = h.length;
    observe(count > 0 ? entryTime(valueAt(frame, p).value) : undefined, count);
    const entriesEnd = skipValue(frame, second, end, DEPTH);
    ack(socket, items >= 3 ? valueAt(frame, entriesEnd).value : undefined);
  } else {
    // Message: time, record[, option].
    const time = valueAt(frame, second);
    observe(time.value, 1);
    const recordEnd = skipValue(frame, time.end, end, DEPTH);
    ack(socket, items >= 4 ? valueAt(frame, recordEnd).value : undefined);
  }
}

function ack(socket: Socket, option: unknown): void {
  const chunk = (option as { chunk?: unknown } | undefined)?.chunk;
  if (typeof chunk === 'string') socket.write(pack({ ack: chunk }));
}

const server = createServer((socket) => {
  const decoder = new MsgpackFrameDecoder({ maxMessageSize: 256 * 1024 * 1024, maxDepth: 64 });
  socket.on('data', (data) => {
    try {
      decoder.push(data, (frame) => handle(socket, frame));
    } catch {
      socket.destroy();
    }
  });
  socket.on('error', () => socket.destroy());
});

server.listen(Number(values.port ?? 24225), values.host, () => counter.report());
