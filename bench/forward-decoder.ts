/**
 * Forward input decoding, three ways, on the same bytes:
 *   scan        — ours: structural msgpack scan, entries checked and counted, no objects built
 *   msgpackr    — msgpackr (core/msgpack.ts) decodes every entry, then core toEntry
 *   @msgpack    — @msgpack/msgpack decodes every entry (EventTime ext registered), then toEntry
 * for a PackedForward payload (Fluent Bit-like Kubernetes records) and for framing a stream
 * of Message-mode messages.
 *
 *   node bench/forward-decoder.ts            (Node ≥ 24; or: npx node bench/forward-decoder.ts)
 */
import { decodeMulti, ExtensionCodec } from '@msgpack/msgpack';
import { makeBatch, toEntry } from '../src/core/batch.ts';
import type { Entry } from '../src/core/entry.ts';
import { EventTime } from '../src/core/event-time.ts';
import { unpackStream } from '../src/core/msgpack.ts';
import { MsgpackFrameDecoder } from '../src/protocol/forward/decoder.ts';
import { encodeMessageMode, scanEntries } from '../src/protocol/forward/modes.ts';

const ENTRIES = 20_000;
const entries: Entry[] = Array.from({ length: ENTRIES }, (_, i) => ({
  time: new EventTime(1700000000 + i, i * 1000),
  record: {
    log: `2024-01-01T00:00:00.000Z INFO request ${i} GET /api/v1/items?page=${i % 50} 200 12ms`,
    stream: 'stdout',
    kubernetes: {
      pod_name: `web-7d4b9c-${i % 97}`,
      namespace_name: 'prod',
      labels: { app: 'web', tier: 'frontend' },
      container_name: 'web',
    },
  },
}));
const payload = makeBatch('bench', entries).payload;

const codec = new ExtensionCodec();
codec.register({
  type: 0,
  encode: () => null,
  decode: (data: Uint8Array) => {
    const v = new DataView(data.buffer, data.byteOffset, 8);
    return new EventTime(v.getUint32(0), v.getUint32(4));
  },
});

function time(fn: () => number, runs = 15): { ms: number; out: number } {
  for (let i = 0; i < 3; i++) fn(); // warm up
  const samples: number[] = [];
  let out = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    out = fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(runs / 2)]!, out };
}

function report(name: string, bytes: number, items: number, r: { ms: number; out: number }) {
  const mbs = bytes / 1048576 / (r.ms / 1000);
  const per = items / (r.ms / 1000);
  console.log(
    `${name.padEnd(34)} ${r.ms.toFixed(2).padStart(8)} ms  ${mbs.toFixed(0).padStart(6)} MiB/s  ${(per / 1e6).toFixed(2).padStart(6)} M items/s  (${r.out})`,
  );
}

console.log(
  `Node ${process.version}; PackedForward payload: ${ENTRIES} entries, ${(payload.length / 1048576).toFixed(2)} MiB`,
);
const opts = { maxDepth: 100, maxDecompressedSize: 1 << 30 };
report(
  'packed: scan (check + count)',
  payload.length,
  ENTRIES,
  time(() => scanEntries(payload, 0, payload.length, opts, true).count),
);
report(
  'packed: msgpackr + toEntry',
  payload.length,
  ENTRIES,
  time(() => unpackStream(payload).map(toEntry).length),
);
report(
  'packed: @msgpack/msgpack + toEntry',
  payload.length,
  ENTRIES,
  time(() => {
    let n = 0;
    for (const item of decodeMulti(payload, { extensionCodec: codec })) if (toEntry(item)) n++;
    return n;
  }),
);

const stream = Buffer.concat(
  entries.map((e) => encodeMessageMode('bench.tag', e.time, e.record, { chunk: 'abcdefgh' })),
);
const reads: Buffer[] = [];
for (let i = 0; i < stream.length; i += 65536) reads.push(stream.subarray(i, i + 65536));
console.log(
  `Message-mode stream: ${ENTRIES} messages, ${(stream.length / 1048576).toFixed(2)} MiB in 64 KiB reads`,
);
report(
  'frames: scan (MsgpackFrameDecoder)',
  stream.length,
  ENTRIES,
  time(() => {
    const d = new MsgpackFrameDecoder({ maxMessageSize: 1 << 25, maxDepth: 100 });
    let n = 0;
    for (const r of reads)
      d.push(r, () => {
        n++;
      });
    return n;
  }),
);
report(
  'frames: msgpackr unpackMultiple',
  stream.length,
  ENTRIES,
  time(() => unpackStream(stream).length),
);
report(
  'frames: @msgpack/msgpack decodeMulti',
  stream.length,
  ENTRIES,
  time(() => {
    let n = 0;
    for (const _ of decodeMulti(stream, { extensionCodec: codec })) n++;
    return n;
  }),
);
