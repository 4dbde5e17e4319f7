import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonBuffer } from '../../src/core/json-buffer.ts';
import { pack, unpack } from '../../src/core/msgpack.ts';
import { EncodeError, writeJson, writeJsonString, writeJsonWithout } from '../../src/core/msgpack-json.ts';
import { toJson } from '../../src/core/to-json.ts';
import { Gen, map } from '../support/msgpack-gen.ts';

/**
 * The transcoder must write exactly what decoding then `toJson` writes. Values are generated
 * as msgpack bytes (every width of every type, not only what an encoder would choose) from a
 * seeded generator (test/support/msgpack-gen.ts), so a failure names a seed that reproduces it.
 */

function transcode(bytes: Uint8Array): string {
  const out = new JsonBuffer(16);
  const end = writeJson(out, bytes, 0, bytes.length);
  assert.equal(end, bytes.length, 'consumed the whole value');
  return out.view().toString('utf8');
}

function expected(bytes: Uint8Array): string | Error {
  try {
    return toJson(unpack(bytes));
  } catch (err) {
    return err as Error;
  }
}

describe('msgpack → JSON transcoder', () => {
  it('writes what decode + toJson writes, for 20,000 generated records', () => {
    let compared = 0;
    for (let seed = 1; seed <= 20_000; seed++) {
      const g = new Gen(seed);
      map(g, 0);
      const bytes = g.take();
      const want = expected(bytes);
      if (want instanceof Error) {
        assert.throws(() => transcode(bytes), EncodeError, `seed ${seed}: ${want.message}`);
        continue;
      }
      const got = transcode(bytes);
      assert.equal(got, want, `seed ${seed}: ${bytes.toString('hex')}`);
      compared++;
    }
    assert.ok(compared > 19_000, `${compared} records compared`);
  });

  it('writes records in the middle of a buffer, after what is there', () => {
    const record = pack({ a: 'x', b: [1, 2.5, null] });
    const src = Buffer.concat([Buffer.from([0xc0, 0xc0]), record, Buffer.from([0xc3])]);
    const out = new JsonBuffer(4);
    out.ascii('>');
    const end = writeJson(out, src, 2, src.length);
    assert.equal(end, 2 + record.length);
    assert.equal(out.view().toString(), '>{"a":"x","b":[1,2.5,null]}');
  });

  it('writes 64-bit integers exactly', () => {
    const src = Buffer.from('81a169cfffffffffffffffff', 'hex');
    assert.equal(transcode(src), '{"i":18446744073709551615}');
  });

  it('hands values nested deeper than it goes to the decoding path, with the same result', () => {
    const deep = (levels: number) => Buffer.concat([Buffer.alloc(levels, 0x91), Buffer.from([0xc0])]);
    assert.equal(transcode(deep(2000)), `${'['.repeat(2000)}null${']'.repeat(2000)}`);
    // Beyond what JSON.stringify can recurse: refused as before, not a crash.
    assert.throws(() => transcode(deep(200_000)), EncodeError);
  });

  it('refuses unknown ext types and values cut short, with the reason', () => {
    assert.throws(() => transcode(Buffer.from('81a178d40501', 'hex')), /unsupported msgpack ext type 5/);
    assert.throws(() => transcode(Buffer.from('82a178a3', 'hex')), /cut short/);
  });

  it('keeps a megabyte string with quotes and newlines exact', () => {
    const text = 'line "one"\n\\two\t'.repeat(60_000);
    const src = pack({ log: text });
    assert.equal(transcode(src), JSON.stringify({ log: text }));
  });

  it('leaves out top-level keys when asked, as deleting them from the decoded record would', () => {
    const without = [Buffer.from('drop'), Buffer.from('é')];
    const write = (bytes: Uint8Array) => {
      const out = new JsonBuffer(8);
      writeJsonWithout(out, bytes, 0, bytes.length, without);
      return out.view().toString();
    };
    assert.equal(write(pack({ drop: 1, a: { drop: 2 }, é: 'x', b: 3 })), '{"a":{"drop":2},"b":3}');
    assert.equal(write(pack({ drop: 1 })), '{}');
    // Through the decoding path (an integer-like key), the same result.
    assert.equal(write(pack({ 1: 'one', drop: [1], z: 0 })), '{"1":"one","z":0}');
    for (let seed = 1; seed <= 2000; seed++) {
      const g = new Gen(seed);
      map(g, 0);
      const bytes = g.take();
      let want: string | undefined;
      try {
        const decoded = unpack(bytes) as Record<string, unknown>;
        delete decoded.a;
        delete decoded.log;
        want = toJson(decoded);
      } catch {
        want = undefined;
      }
      const out = new JsonBuffer(8);
      if (want === undefined) {
        assert.throws(() =>
          writeJsonWithout(out, bytes, 0, bytes.length, [Buffer.from('a'), Buffer.from('log')]),
        );
        continue;
      }
      writeJsonWithout(out, bytes, 0, bytes.length, [Buffer.from('a'), Buffer.from('log')]);
      assert.equal(out.view().toString(), want, `seed ${seed}`);
    }
  });

  it('writes UTF-8 bytes as a JSON string, as JSON.stringify does their text', () => {
    for (const text of ['plain', '{"a":"b\\n"}\n', 'tab\there', 'é€😀', '\u0000\u001f\u007f']) {
      const bytes = Buffer.from(`xx${text}yy`);
      const out = new JsonBuffer(4);
      writeJsonString(out, bytes, 2, bytes.length - 2);
      assert.equal(out.view().toString(), JSON.stringify(text));
    }
  });
});
