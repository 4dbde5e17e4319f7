/**
 * A counting Loki push endpoint: it answers 204 and keeps nothing, reading no more of a push
 * than the count and the latency need — so the sink, not the output under test, is never the
 * limit. (The tests' fake, test/support/loki-fake.ts, decodes every push with protobufjs and
 * checks Loki's rules; a benchmark must not pay for that.)
 *
 *   application/x-protobuf: snappy block ─► PushRequest walked in wire format, nothing built:
 *     field 1 streams ─► field 2 entries (counted) ─► field 1 timestamp: seconds, nanos
 *   application/json (gzip allowed): parsed, entries counted from `values`
 *
 * Each entry's timestamp (the event time the load generator stamped) gives the latency.
 *
 *   node bench/sinks/loki-sink.ts --port 3100
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import snappy from 'snappyjs';
import { EventTime } from '../../src/core/event-time.ts';
import { SinkCounter, serveHttp, sinkArgs } from './stats.ts';

const address = sinkArgs('3100');
const counter = new SinkCounter();

const LEN = 2;
const VARINT = 0;

/** Protobuf wire format, read in place. */
class Reader {
  readonly buf: Uint8Array;
  readonly end: number;
  pos: number;

  constructor(buf: Uint8Array, start: number, end: number) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  varint(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.pos++]!;
      // Multiplication, not <<: seconds and lengths may pass 2^31.
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
    }
  }

  /** Skips a field's value of this wire type. */
  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === LEN) {
      // Not `this.pos += this.varint()`: that reads pos before the varint moves it.
      const length = this.varint();
      this.pos += length;
    } else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new Error(`wire type ${wire}`);
  }
}

/** Counts the entries of a PushRequest, observing their timestamps; runs of one time are observed once. */
function countProtobuf(buf: Uint8Array): void {
  let time: EventTime | undefined;
  let sec = -1;
  let nsec = -1;
  let pending = 0;
  const request = new Reader(buf, 0, buf.length);
  while (request.pos < request.end) {
    const key = request.varint();
    if (key !== ((1 << 3) | LEN)) {
      request.skip(key & 7);
      continue;
    }
    const streamEnd = request.varint() + request.pos;
    const stream = new Reader(buf, request.pos, streamEnd);
    request.pos = streamEnd;
    while (stream.pos < stream.end) {
      const skey = stream.varint();
      if (skey !== ((2 << 3) | LEN)) {
        stream.skip(skey & 7);
        continue;
      }
      const entryEnd = stream.varint() + stream.pos;
      const entry = new Reader(buf, stream.pos, entryEnd);
      stream.pos = entryEnd;
      let s = 0;
      let n = 0;
      while (entry.pos < entry.end) {
        const ekey = entry.varint();
        if (ekey !== ((1 << 3) | LEN)) {
          entry.skip(ekey & 7);
          continue;
        }
        const tsEnd = entry.varint() + entry.pos;
        while (entry.pos < tsEnd) {
          const tkey = entry.varint();
          if (tkey === ((1 << 3) | VARINT)) s = entry.varint();
          else if (tkey === ((2 << 3) | VARINT)) n = entry.varint();
          else entry.skip(tkey & 7);
        }
      }
      if (s !== sec || n !== nsec) {
        if (pending > 0) counter.observe(time, pending);
        pending = 0;
        sec = s;
        nsec = n;
        time = new EventTime(s, n);
      }
      pending++;
    }
  }
  if (pending > 0) counter.observe(time, pending);
}

function countJson(text: string): void {
  const body = JSON.parse(text) as { streams?: { values?: [string, string][] }[] };
  for (const stream of body.streams ?? [])
    for (const [ns] of stream.values ?? []) {
      const t = BigInt(ns);
      counter.observe(new EventTime(Number(t / 1_000_000_000n), Number(t % 1_000_000_000n)), 1);
    }
}

function answer(res: ServerResponse, status: number, text = ''): void {
  if (status === 204) {
    res.writeHead(204);
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): void {
  const path = new URL(req.url ?? '/', 'http://sink').pathname;
  if (path !== '/loki/api/v1/push') answer(res, 404, '404 page not found');
  else if (req.method !== 'POST') answer(res, 405, 'method not allowed');
  else {
    if ((req.headers['content-type'] ?? '').startsWith('application/json')) {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      countJson(body.toString('utf8'));
    } else countProtobuf(snappy.uncompress(raw));
    answer(res, 204);
  }
}

serveHttp(counter, address, handle, (res, err) =>
  answer(res, 400, `bench sink: unreadable push body: ${(err as Error).message}`),
);
