import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pack } from '../../../src/core/msgpack.ts';
import {
  createFrameDecoder,
  JsonFrameDecoder,
  MsgpackFrameDecoder,
} from '../../../src/protocol/forward/decoder.ts';
import { FrameError } from '../../../src/protocol/forward/errors.ts';
import { skipValue } from '../../../src/protocol/forward/msgpack-scan.ts';

const limits = { maxMessageSize: 1 << 20, maxDepth: 32 };

function collect(decoder: { push(c: Uint8Array, f: (x: Uint8Array) => void): void }, chunks: Uint8Array[]) {
  const frames: Buffer[] = [];
  for (const c of chunks) decoder.push(c, (f) => frames.push(Buffer.from(f)));
  return frames;
}

function split(bytes: Buffer, step: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += step) out.push(bytes.subarray(i, i + step));
  return out;
}

const messages = [
  pack(['a', 1, { k: 'v' }]),
  Buffer.from([0xc0]),
  pack(['b', [[1, { n: 1 }]], { chunk: 'x' }]),
  pack(['c', Buffer.alloc(70_000, 0x61)]), // bin32 body spread over many reads
  pack({ deep: [[[[1]]]] }),
];
const stream = Buffer.concat(messages);

describe('forward msgpack framing', () => {
  it('frames several messages in one read', () => {
    const frames = collect(new MsgpackFrameDecoder(limits), [stream]);
    assert.deepEqual(frames, messages);
  });

  for (const step of [1, 2, 7, 4096]) {
    it(`frames one message split over many reads (${step}-byte reads)`, () => {
      const decoder = new MsgpackFrameDecoder(limits);
      const frames = collect(decoder, split(stream, step));
      assert.deepEqual(frames, messages);
      assert.equal(decoder.pending, 0);
    });
  }

  it('hands out frames that stay intact until the next push (no compaction underneath)', () => {
    const decoder = new MsgpackFrameDecoder(limits);
    const views: Uint8Array[] = [];
    const bytes = Buffer.concat([messages[0]!, messages[2]!]);
    decoder.push(bytes.subarray(0, 3), (f) => views.push(f));
    decoder.push(bytes.subarray(3, messages[0]!.length + 2), (f) => views.push(f));
    assert.deepEqual(Buffer.from(views[0]!), messages[0]);
  });

  it('refuses a huge length prefix as soon as its header arrives, holding nothing', () => {
    const decoder = new MsgpackFrameDecoder({ maxMessageSize: 1024, maxDepth: 8 });
    // ["t", bin32 of 4 GiB …]: only 11 bytes ever arrive.
    const header = Buffer.from([0x92, 0xa1, 0x74, 0xc6, 0xff, 0xff, 0xff, 0xf0, 1, 2, 3]);
    assert.throws(
      () => decoder.push(header, () => {}),
      (err: FrameError) => err instanceof FrameError && err.reason === 'too_large',
    );
    const arrays = new MsgpackFrameDecoder({ maxMessageSize: 1024, maxDepth: 8 });
    assert.throws(
      () => arrays.push(Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff]), () => {}),
      (err: FrameError) => err.reason === 'too_large',
    );
  });

  it('refuses a message over max_message_size that arrives piece by piece', () => {
    const decoder = new MsgpackFrameDecoder({ maxMessageSize: 100, maxDepth: 8 });
    const big = pack(['t', 'x'.repeat(200)]);
    assert.throws(() => {
      for (const c of split(big, 10)) decoder.push(c, () => {});
    }, /larger than 100 bytes/);
  });

  it('refuses nesting deeper than max depth without recursion', () => {
    const deep = Buffer.concat([Buffer.alloc(100_000, 0x91), Buffer.from([0xc0])]);
    const decoder = new MsgpackFrameDecoder({ maxMessageSize: 1 << 20, maxDepth: 100 });
    assert.throws(
      () => decoder.push(deep, () => {}),
      (err: FrameError) => err.reason === 'too_deep',
    );
    assert.throws(() => skipValue(deep, 0, deep.length, 100), /nested deeper than 100/);
  });

  it('emits the frames before a fault, then throws', () => {
    const decoder = new MsgpackFrameDecoder(limits);
    const frames: Uint8Array[] = [];
    assert.throws(() =>
      decoder.push(Buffer.concat([messages[0]!, Buffer.from([0xc1])]), (f) => frames.push(f)),
    );
    assert.equal(frames.length, 1);
  });

  it('refuses values core/msgpack.ts could not decode: bad ext, container map keys', () => {
    const bad = [
      Buffer.from('d60000000001', 'hex'), // EventTime of 4 bytes
      Buffer.from('d40105', 'hex'), // ext type 1
      Buffer.from('d47800', 'hex'), // msgpackr's RegExp extension
      Buffer.from('81910001', 'hex'), // {[0]: 1}
      Buffer.from('81c4016101', 'hex'), // {bin: 1}
      Buffer.from('c1', 'hex'),
    ];
    for (const b of bad) assert.throws(() => skipValue(b, 0, b.length, 8), FrameError, b.toString('hex'));
    const ok = Buffer.from('81a16101', 'hex');
    assert.equal(skipValue(ok, 0, ok.length, 8), ok.length);
  });
});

describe('msgpack timestamps (ext -1) a reader can take', () => {
  const ts96 = (nsec: number, sec: bigint) => {
    const b = Buffer.alloc(15);
    b[0] = 0xc7;
    b[1] = 12;
    b[2] = 0xff;
    b.writeUInt32BE(nsec, 3);
    b.writeBigInt64BE(sec, 7);
    return b;
  };
  const ts64 = (nsec: number, sec: number) => {
    const b = Buffer.alloc(10);
    b[0] = 0xd7;
    b[1] = 0xff;
    b.writeUInt32BE(((nsec << 2) | Math.floor(sec / 2 ** 32)) >>> 0, 2);
    b.writeUInt32BE(sec >>> 0, 6);
    return b;
  };

  it('takes what a Date holds and refuses what it cannot (one record would poison a chunk)', () => {
    for (const ok of [
      ts96(999_999_999, 8_639_999_999_999n),
      ts96(0, -8_639_999_999_999n),
      ts64(5, 1_700_000_000),
    ])
      assert.equal(skipValue(ok, 0, ok.length, 8), ok.length);
    for (const bad of [ts96(0, 8_640_000_000_000n), ts96(1_000_000_000, 0n), ts64(1_000_000_000, 0)])
      assert.throws(() => skipValue(bad, 0, bad.length, 8), /timestamp ext at offset 0 is out of range/);
  });
});

describe('forward JSON framing', () => {
  const text = '["a",1,{"k":"v]}[{"}]  \n["b",[[1,{"n":[1,2,{"x":"\\"]"}]}]],{"chunk":"c"}]';
  const values = ['["a",1,{"k":"v]}[{"}]', '["b",[[1,{"n":[1,2,{"x":"\\"]"}]}]],{"chunk":"c"}]'];

  it('picks JSON when the first byte is { or [', () => {
    assert.equal(createFrameDecoder(0x5b, limits).format, 'json');
    assert.equal(createFrameDecoder(0x7b, limits).format, 'json');
    assert.equal(createFrameDecoder(0x93, limits).format, 'msgpack');
  });

  for (const step of [1, 3, 1000]) {
    it(`splits values back to back, brackets inside strings ignored (${step}-byte reads)`, () => {
      const frames = collect(new JsonFrameDecoder(limits), split(Buffer.from(text), step));
      assert.deepEqual(
        frames.map((f) => f.toString()),
        values,
      );
      for (const f of frames) JSON.parse(f.toString());
    });
  }

  it('refuses garbage between values, too deep and too large', () => {
    assert.throws(
      () => new JsonFrameDecoder(limits).push(Buffer.from('[1] x'), () => {}),
      /expects arrays or objects/,
    );
    assert.throws(
      () =>
        new JsonFrameDecoder({ maxMessageSize: 1000, maxDepth: 5 }).push(
          Buffer.from('[[[[[[1]]]]]]'),
          () => {},
        ),
      /deeper than 5/,
    );
    assert.throws(
      () =>
        new JsonFrameDecoder({ maxMessageSize: 10, maxDepth: 5 }).push(
          Buffer.from('["aaaaaaaaaaaa"]'),
          () => {},
        ),
      /larger than 10/,
    );
  });
});
