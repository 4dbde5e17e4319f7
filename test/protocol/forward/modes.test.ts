import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { decodeEntries, makeBatch } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { eventTimeBytes, pack, unpack } from '../../../src/core/msgpack.ts';
import { encodeAck, parseAck } from '../../../src/protocol/forward/ack.ts';
import { FrameError } from '../../../src/protocol/forward/errors.ts';
import {
  encodeForwardMode,
  encodeMessageMode,
  encodePackedForward,
  isKeepalive,
  parseJsonMessage,
  parseMessage,
  scanEntries,
  toEntries,
} from '../../../src/protocol/forward/modes.ts';

const limits = { maxDepth: 64 };
const entryOptions = { maxDepth: 64, maxDecompressedSize: 1 << 20 };
const T = new EventTime(1700000000, 123456789);

async function decode(frame: Uint8Array, fields?: [string, string][]) {
  const message = parseMessage(frame, limits);
  const stream = await toEntries(message, { ...entryOptions, ...(fields ? { fields } : {}) });
  return { message, stream, entries: decodeEntries(stream.payload) };
}

const raw = (...parts: (number[] | Uint8Array)[]) =>
  Buffer.concat(parts.map((p) => (Array.isArray(p) ? Buffer.from(p) : p)));

describe('forward modes → entry stream', () => {
  it('Message mode with integer, float and EventTime times (nanoseconds kept exactly)', async () => {
    const int = await decode(encodeMessageMode('app', 1700000000, { a: 1 }));
    assert.equal(int.message.mode, 'message');
    assert.deepEqual(int.entries, [{ time: new EventTime(1700000000, 0), record: { a: 1 } }]);
    const float = await decode(encodeMessageMode('app', 1700000000.5, { a: 1 }));
    assert.deepEqual(float.entries[0]!.time, new EventTime(1700000000, 500_000_000));
    const ext = await decode(encodeMessageMode('app', T, { a: 1 }));
    assert.deepEqual(ext.entries[0]!.time, T);
    // The EventTime bytes travel untouched.
    assert.ok(ext.stream.payload.includes(eventTimeBytes(T)));
  });

  it('Forward mode, several entries, option with chunk and size', async () => {
    const entries: Entry[] = [
      { time: T, record: { n: 1 } },
      { time: new EventTime(1700000001, 1), record: { n: 2 } },
    ];
    const {
      message,
      stream,
      entries: out,
    } = await decode(encodeForwardMode('fw', entries, { chunk: 'abc', size: 2 }));
    assert.equal(message.mode, 'forward');
    assert.equal(message.tag, 'fw');
    assert.deepEqual(unpack(message.options.chunk!), 'abc');
    assert.equal(message.options.size, 2);
    assert.equal(stream.count, 2);
    assert.deepEqual(out, entries);
  });

  it('PackedForward passes the sender’s bytes through untouched (bin and str)', async () => {
    const payload = makeBatch('x', [
      { time: T, record: { log: 'one' } },
      { time: T, record: { log: 'two' }, metadata: { otlp: { trace_id: 'abc' } } },
    ]).payload;
    const { message, stream } = await decode(encodePackedForward('pk', payload, { size: 2 }));
    assert.equal(message.mode, 'packed');
    assert.equal(stream.count, 2);
    assert.equal(stream.items, 2);
    assert.ok(stream.payload.equals(payload));
    // Fluentd's old out_forward sends the stream as a str.
    const asStr = raw([0x92, 0xa2, 0x70, 0x6b, 0xda, payload.length >> 8, payload.length & 0xff], payload);
    const str = await decode(asStr);
    assert.ok(str.stream.payload.equals(payload));
  });

  it('the payload owns its bytes: reusing the frame does not change a batch', async () => {
    const payload = makeBatch('x', [{ time: T, record: { log: 'kept' } }]).payload;
    const frame = encodePackedForward('pk', payload);
    const { stream } = await decode(frame);
    frame.fill(0);
    assert.deepEqual(decodeEntries(stream.payload)[0]!.record, { log: 'kept' });
  });

  it('Fluent Bit metadata entries kept; group start/end markers skipped', async () => {
    const marker = (sec: number) =>
      raw([0x92, 0x92], eventTimeBytes(new EventTime(sec, 0)), pack({ group: 1 }), pack({ resource: 'r' }));
    const payload = Buffer.concat([
      marker(0xffffffff),
      makeBatch('x', [{ time: T, record: { log: 'in group' }, metadata: { k8s: 'a' } }]).payload,
      marker(0xfffffffe),
    ]);
    const { stream, entries } = await decode(encodePackedForward('fb', payload, { size: 3 }));
    assert.equal(stream.count, 1);
    assert.equal(stream.items, 3);
    assert.deepEqual(entries, [{ time: T, record: { log: 'in group' }, metadata: { k8s: 'a' } }]);
  });

  it('time 0 and nil become now, nil records are skipped, as in Fluentd', async () => {
    const frame = raw(
      [0x92, 0xa1, 0x74, 0x93],
      pack([0, { a: 1 }]),
      raw([0x92, 0xc0], pack({ b: 2 })),
      pack([1700000000, null]),
    );
    const before = EventTime.now();
    const { stream, entries } = await decode(frame);
    assert.equal(stream.count, 2);
    assert.equal(stream.items, 3);
    assert.deepEqual(
      entries.map((e) => e.record),
      [{ a: 1 }, { b: 2 }],
    );
    for (const e of entries) assert.ok(e.time.compare(before) >= 0);
  });

  it('a time an EventTime cannot hold (epoch nanoseconds as an integer or float) becomes now', async () => {
    const nanos = Buffer.from('cf17a2b3c4d5e6f700', 'hex'); // ≈ 1.7e18
    const frame = raw(
      [0x92, 0xa1, 0x74, 0x93],
      raw([0x92], nanos, pack({ a: 1 })),
      pack([1.7e18, { b: 2 }]),
      pack([2 ** 32, { c: 3 }]),
    );
    const before = EventTime.now();
    const { stream, entries } = await decode(frame);
    assert.equal(stream.count, 3);
    for (const e of entries) {
      assert.ok(e.time.compare(before) >= 0, `${e.time.sec}`);
      assert.ok(e.time.sec < 2 ** 32);
    }
  });

  it('msgpack timestamp ext (-1) times become EventTimes', async () => {
    const ts64 = Buffer.alloc(8);
    ts64.writeUInt32BE((5 << 2) >>> 0, 0); // nsec 5, sec high bits 0
    ts64.writeUInt32BE(1700000000, 4);
    const frame = raw([0x93, 0xa1, 0x74, 0xd7, 0xff], ts64, pack({ a: 1 }));
    const { entries } = await decode(frame);
    assert.deepEqual(entries[0]!.time, new EventTime(1700000000, 5));
  });

  it('CompressedPackedForward: gzip with several members, and zstd', async () => {
    const a = makeBatch('x', [{ time: T, record: { n: 1 } }]).payload;
    const b = makeBatch('x', [{ time: T, record: { n: 2 } }]).payload;
    const gz = Buffer.concat([gzipSync(a), gzipSync(b)]);
    const g = await decode(encodePackedForward('z', gz, { compressed: 'gzip', size: 2 }));
    assert.equal(g.message.mode, 'compressed');
    assert.deepEqual(
      g.entries.map((e) => e.record),
      [{ n: 1 }, { n: 2 }],
    );
    const z = await decode(
      encodePackedForward('z', zstdCompressSync(Buffer.concat([a, b])), { compressed: 'zstd' }),
    );
    assert.equal(z.stream.count, 2);
    // Magic bytes are trusted when `compressed` is absent, as Fluent Bit does.
    const sniffed = await decode(encodePackedForward('z', gzipSync(a)));
    assert.equal(sniffed.message.mode, 'compressed');
  });

  it('caps the decompressed size (a gzip bomb costs nothing)', async () => {
    const bomb = gzipSync(Buffer.alloc(8 << 20));
    assert.ok(bomb.length < 20_000);
    const message = parseMessage(encodePackedForward('z', bomb, { compressed: 'gzip' }), limits);
    await assert.rejects(
      toEntries(message, { ...entryOptions, maxDecompressedSize: 1 << 20 }),
      (err: FrameError) => err.reason === 'too_large',
    );
    const corrupt = parseMessage(
      encodePackedForward('z', Buffer.from('1f8b0800garbage'), { compressed: 'gzip' }),
      limits,
    );
    await assert.rejects(toEntries(corrupt, entryOptions), (err: FrameError) => err.reason === 'malformed');
  });

  it('source fields are set in every record, replacing a key already there', async () => {
    const payload = makeBatch('x', [
      { time: T, record: { host: 'spoofed', log: 'a' } },
      { time: T, record: { log: 'b' }, metadata: { m: 1 } },
    ]).payload;
    const { entries } = await decode(encodePackedForward('pk', payload), [
      ['host', '10.1.2.3'],
      ['source', 'node-1'],
    ]);
    assert.deepEqual(
      entries.map((e) => e.record),
      [
        { log: 'a', host: '10.1.2.3', source: 'node-1' },
        { log: 'b', host: '10.1.2.3', source: 'node-1' },
      ],
    );
    assert.deepEqual(entries[1]!.metadata, { m: 1 });
  });

  it('Message mode takes Fluent Bit’s option.metadata', async () => {
    const frame = raw([0x94, 0xa1, 0x74], eventTimeBytes(T), pack({ a: 1 }), pack({ metadata: { k: 'v' } }));
    const { entries } = await decode(frame);
    assert.deepEqual(entries, [{ time: T, record: { a: 1 }, metadata: { k: 'v' } }]);
  });

  it('reads fluent_signal; nil options (old Docker) are fine', async () => {
    assert.equal(
      parseMessage(encodePackedForward('m', Buffer.alloc(0), { fluent_signal: 1 }), limits).options.signal,
      1,
    );
    const nilOption = raw([0x94, 0xa1, 0x74, 0x01], pack({ a: 1 }), [0xc0]);
    assert.equal((await decode(nilOption)).stream.count, 1);
  });

  it('recognises a msgpack nil as a keepalive', () => {
    assert.equal(isKeepalive(Buffer.from([0xc0])), true);
    assert.equal(isKeepalive(pack(['t', 1, {}])), false);
  });

  it('a __proto__ key in an option or a record pollutes nothing and asks for no ack', async () => {
    const protoKey = (value: Buffer) => raw([0x81, 0xa9], Buffer.from('__proto__'), value);
    // ["t", bin(empty), {"__proto__": {"chunk": "injected", "size": 1}}]
    const frame = raw([0x93, 0xa1, 0x74, 0xc4, 0x00], protoKey(pack({ chunk: 'injected', size: 1 })));
    const message = parseMessage(frame, limits);
    assert.equal(message.options.chunk, undefined);
    assert.equal(message.options.size, undefined);
    const record = protoKey(pack({ polluted: true }));
    const entry = await decode(raw([0x93, 0xa1, 0x74, 0x01], record));
    assert.equal(entry.stream.count, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // The record's bytes are passed on as sent.
    assert.ok(entry.stream.payload.includes(record));
    const json = parseJsonMessage(
      Buffer.from('["t",1,{"__proto__":{"polluted":1}},{"__proto__":{"chunk":"x"}}]'),
    );
    assert.equal(json.options.chunk, undefined);
    const jsonEntries = await toEntries(json, entryOptions);
    assert.equal(jsonEntries.count, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('forward modes — refusals', () => {
  const refuse = (frame: Uint8Array, reason: string, pattern?: RegExp) =>
    assert.throws(
      () => parseMessage(frame, limits),
      (err: FrameError) =>
        err instanceof FrameError && err.reason === reason && (!pattern || pattern.test(err.message)),
    );

  it('refuses non-arrays, bad tags, wrong lengths and unknown modes', () => {
    refuse(pack({ a: 1 }), 'malformed', /array/);
    refuse(pack(['t']), 'malformed', /2 to 4/);
    refuse(pack([1, 1, {}]), 'malformed', /tag/);
    refuse(pack(['', 1, {}]), 'malformed', /empty/);
    refuse(pack(['t', { a: 1 }]), 'unknown_mode');
    refuse(pack(['t', true, {}]), 'unknown_mode');
    refuse(pack(['t', 1, { a: 1 }, { compressed: 'lz4' }]), 'unknown_mode');
    refuse(encodePackedForward('t', Buffer.alloc(0), { compressed: 'brotli' as 'gzip' }), 'unknown_mode');
    refuse(encodePackedForward('t', Buffer.alloc(0), { fluent_signal: 9 }), 'unknown_mode');
    refuse(pack(['t', 1, { a: 1 }, 'not a map']), 'malformed', /option/);
    refuse(Buffer.concat([pack(['t', 1, {}]), Buffer.from([0xc0])]), 'malformed', /after the end/);
  });

  it('refuses a chunk id that is not a string of at most 128 bytes, and a binary tag', () => {
    const ok = parseMessage(encodeMessageMode('t', 1, { a: 1 }, { chunk: 'c'.repeat(128) }), limits);
    assert.equal(unpack(ok.options.chunk!), 'c'.repeat(128));
    refuse(encodeMessageMode('t', 1, { a: 1 }, { chunk: 'c'.repeat(129) }), 'malformed', /129 bytes/);
    refuse(encodeMessageMode('t', 1, { a: 1 }, { chunk: 'é'.repeat(65) }), 'malformed', /130 bytes/);
    refuse(pack(['t', 1, { a: 1 }, { chunk: 42 }]), 'malformed', /chunk option is not a string/);
    refuse(pack(['t', 1, { a: 1 }, { chunk: { id: 'x' } }]), 'malformed', /chunk option is not a string/);
    refuse(pack(['t', 1, { a: 1 }, { chunk: Buffer.from('abc') }]), 'malformed', /chunk/);
    // A nil chunk is no chunk, as before.
    assert.equal(parseMessage(pack(['t', 1, { a: 1 }, { chunk: null }]), limits).options.chunk, undefined);
    // ["t" as bin, 1, {a: 1}]
    refuse(raw([0x93, 0xc4, 0x01, 0x74, 0x01, 0x81, 0xa1, 0x61, 0x01]), 'malformed', /tag is not a string/);
    const json = (text: string) =>
      assert.throws(
        () => parseJsonMessage(Buffer.from(text)),
        (err: FrameError) =>
          err instanceof FrameError && err.reason === 'malformed' && /chunk/.test(err.message),
        text,
      );
    json('["t",1,{"a":1},{"chunk":42}]');
    json('["t",1,{"a":1},{"chunk":{"id":"x"}}]');
    json(`["t",1,{"a":1},{"chunk":"${'c'.repeat(129)}"}]`);
    assert.equal(
      Buffer.from(
        parseJsonMessage(Buffer.from(`["t",1,{"a":1},{"chunk":"${'c'.repeat(128)}"}]`)).options.chunk!,
      ).length,
      130,
    );
  });

  it('refuses entry streams that are not [time, record] entries', async () => {
    const bad = [
      pack([1, 2, 3]),
      pack([1700000000, 'not a map']),
      pack(['2024-01-01', { a: 1 }]),
      pack([[1700000000], { a: 1 }]),
      pack([[1700000000, 'meta'], { a: 1 }]),
      Buffer.from([0x92, 0x01]), // cut short
    ];
    for (const payload of bad) {
      const message = parseMessage(encodePackedForward('t', payload), limits);
      await assert.rejects(toEntries(message, entryOptions), FrameError, payload.toString('hex'));
    }
    assert.throws(() => scanEntries(Buffer.from([0x01]), 0, 1, entryOptions, true), /not a \[time, record\]/);
  });
});

describe('forward JSON mode messages', () => {
  it('takes Message and Forward mode, chunk kept as its JSON text', async () => {
    const m = parseJsonMessage(Buffer.from('["app",1700000000.25,{"a":1},{"chunk":"c1"}]'));
    assert.equal(m.mode, 'message');
    assert.equal(Buffer.from(m.options.chunk!).toString(), '"c1"');
    const s = await toEntries(m, entryOptions);
    assert.deepEqual(decodeEntries(s.payload), [
      { time: new EventTime(1700000000, 250_000_000), record: { a: 1 } },
    ]);
    const f = parseJsonMessage(Buffer.from('["app",[[1,{"n":1}],[[2,{"m":1}],{"n":2}],[3,null]]]'));
    const fs = await toEntries(f, { ...entryOptions, fields: [['src', '1.1.1.1']] });
    assert.equal(fs.count, 2);
    assert.equal(fs.items, 3);
    assert.deepEqual(
      decodeEntries(fs.payload).map((e) => [e.record, e.metadata]),
      [
        [{ n: 1, src: '1.1.1.1' }, undefined],
        [{ n: 2, src: '1.1.1.1' }, { m: 1 }],
      ],
    );
  });

  it('refuses JSON it cannot take', () => {
    assert.throws(() => parseJsonMessage(Buffer.from('{"a":1}')), /array/);
    assert.throws(
      () => parseJsonMessage(Buffer.from('["t","packed"]')),
      (e: FrameError) => e.reason === 'unknown_mode',
    );
    assert.throws(() => parseJsonMessage(Buffer.from('["t",[1,2]]')), /not a \[time, record\]/);
    assert.throws(() => parseJsonMessage(Buffer.from('["t",1,{}')), /invalid JSON/);
  });
});

describe('forward ack', () => {
  it('echoes the chunk byte for byte, in msgpack or JSON', () => {
    const chunk = pack('p8n9gmxTQVC8/nh2wlKKeQ==');
    const ack = encodeAck(chunk, 'msgpack');
    assert.deepEqual(unpack(ack), { ack: 'p8n9gmxTQVC8/nh2wlKKeQ==' });
    assert.ok(Buffer.from(parseAck(ack)!).equals(chunk));
    const bin = pack(Buffer.from([1, 2, 3]));
    assert.ok(Buffer.from(parseAck(encodeAck(bin, 'msgpack'))!).equals(bin));
    assert.equal(encodeAck(Buffer.from('"c1"'), 'json').toString(), '{"ack":"c1"}');
    assert.equal(parseAck(pack({ nack: 1 })), undefined);
  });
});
