import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEntries, makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import {
  eventTimeBytes,
  pack,
  packDeep,
  packr,
  unpack,
  unpackDeep,
  unpackr,
  unpackStream,
} from '../../src/core/msgpack.ts';

/** `{a: [[…[1]…]]}` with `depth` arrays, built without recursion. */
function deepRecord(depth: number): Record<string, unknown> {
  const root: unknown[] = [];
  let cur = root;
  for (let i = 1; i < depth; i++) {
    const next: unknown[] = [];
    cur.push(next);
    cur = next;
  }
  cur.push(1);
  return { a: root };
}

function depthOf(record: Record<string, unknown>): number {
  let n = 0;
  for (let v: unknown = record.a; Array.isArray(v); v = v[0]) n++;
  return n;
}

describe('msgpack pack', () => {
  it('packs a nested EventTime as ext 0 again, so a re-encoded record keeps it a time', () => {
    const record = {
      at: new EventTime(1_700_000_000, 5),
      list: [new EventTime(1, 2)],
      n: 2n ** 64n - 1n,
      i: 5n,
    };
    const bytes = pack(record);
    assert.ok(bytes.includes(Buffer.from('d7006553f10000000005', 'hex')), bytes.toString('hex'));
    assert.deepEqual(unpack(bytes), { ...record, i: 5 });
    // The recursion-free packer writes the same bytes.
    assert.ok(packDeep(record).equals(bytes));
  });

  it('packDeep gives the bytes msgpackr gives, for what decoded records hold', () => {
    const values: unknown[] = [
      {
        f: 1.5,
        u: undefined,
        ints: [
          0,
          127,
          128,
          255,
          256,
          65535,
          65536,
          2 ** 32 - 1,
          2 ** 32,
          -1,
          -32,
          -33,
          -128,
          -129,
          -32768,
          -32769,
          -(2 ** 31),
          -(2 ** 31) - 1,
        ],
        big: 2 ** 40,
        s: ['', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(300), 'é'.repeat(40_000)],
        arr: Array.from({ length: 20 }, (_, i) => i),
        bin: Buffer.from([1, 2, 3]),
        nested: { a: [1, { b: null }], c: true, d: false },
        bi: [-7n, 2n ** 63n],
        time: new EventTime(1, 2),
      },
      Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i])),
      Array.from({ length: 70_000 }, (_, i) => i),
    ];
    for (const v of values) assert.ok(packDeep(v).equals(packr.pack(v)));
  });

  it('packs (and so buffers) a record nested deeper than msgpackr can recurse', () => {
    const record = deepRecord(20_000);
    assert.throws(() => packr.pack(record), RangeError);
    const bytes = pack(record);
    assert.equal(bytes.length, 1 + 2 + 20_000 + 1);
    // A batch of it decodes back (at a depth msgpackr's decoder still reaches).
    const batch = makeBatch('t', [{ time: new EventTime(1, 0), record: deepRecord(5000) }]);
    assert.equal(depthOf(decodeEntries(batch.payload)[0]!.record), 5000);
    assert.deepEqual(unpack(pack({ ...deepRecord(3), x: 'y' })), { a: [[[1]]], x: 'y' });
  });
});

describe('msgpack unpack', () => {
  it('unpackDeep decodes as msgpackr does', () => {
    const stream = Buffer.concat([
      packr.pack({
        f: 1.5,
        ints: [0, 255, 65536, 2 ** 32, -33, -129, -(2 ** 31) - 1, 2 ** 53],
        s: ['', 'x'.repeat(40), 'é'.repeat(300)],
        bin: Buffer.from([1, 2, 3]),
        n: null,
        b: [true, false],
        nested: { a: [1, { b: null }], e: {}, l: [] },
        big: 2n ** 63n,
      }),
      Buffer.from([0x92]),
      eventTimeBytes(new EventTime(1_700_000_000, 123_456_789)),
      packr.pack({ 1: 2 }),
      // {"__proto__": {"x": 1}}: msgpackr renames the key, pollutes nothing.
      Buffer.from([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x78, 1]),
      Buffer.from([0xd6, 0xff, 0, 0, 0, 5]),
      Buffer.from([0xd7, 0xff, 0, 0, 0, 4, 0, 0, 0, 5]),
      Buffer.from([0xc7, 12, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
    ]);
    assert.deepEqual(unpackDeep(stream), unpackr.unpackMultiple(stream));
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });

  it('decodes a stream msgpackr cannot recurse through', () => {
    const bytes = Buffer.concat([pack({ ok: 1 }), pack(deepRecord(30_000)), pack({ ok: 2 })]);
    const values = unpackStream(bytes) as Record<string, unknown>[];
    assert.equal(values.length, 3);
    assert.deepEqual(values[0], { ok: 1 });
    assert.equal(depthOf(values[1]!), 30_000);
    assert.deepEqual(values[2], { ok: 2 });
  });
});
