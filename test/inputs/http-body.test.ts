import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import type { Entry } from '../../src/core/entry.ts';
import { EventTime, FLUENT_BIT_GROUP_END, FLUENT_BIT_GROUP_START } from '../../src/core/event-time.ts';
import { eventTimeBytes, pack } from '../../src/core/msgpack.ts';
import {
  BodyError,
  type BodyRequest,
  type DecodeOptions,
  decodeBody,
  decompress,
  mediaType,
  parseForm,
  parseJsonValues,
} from '../../src/inputs/http-body.ts';

const OPTIONS: DecodeOptions = { timeKey: 'time', keepTimeKey: false, maxDecompressedSize: 1024 * 1024 };

function decode(
  body: string | Buffer,
  contentType: string | undefined,
  extra: Partial<BodyRequest> = {},
  options: Partial<DecodeOptions> = {},
): Promise<Entry[]> {
  const raw = typeof body === 'string' ? Buffer.from(body) : body;
  return decodeBody(
    { body: raw, contentType, contentEncoding: undefined, time: undefined, ...extra },
    { ...OPTIONS, ...options },
  );
}

const records = (entries: Entry[]) => entries.map((e) => e.record);

async function rejects(promise: Promise<unknown>, status: number, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof BodyError, `expected BodyError, got ${String(err)}`);
    assert.equal(err.status, status);
    assert.match(err.message, message);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
}

/** Asserts the entry time was taken from the clock during the call. */
function assertNow(time: EventTime, before: number, after: number): void {
  const ms = time.toMillis();
  assert.ok(ms >= before - 1 && ms <= after + 1, `expected now, got ${time.toIso()}`);
}

describe('mediaType', () => {
  it('lower-cases and drops parameters', () => {
    assert.equal(mediaType('Application/JSON; charset=utf-8'), 'application/json');
    assert.equal(mediaType(undefined), '');
  });
});

describe('parseJsonValues', () => {
  const values = (text: string) => parseJsonValues(Buffer.from(text)).map((v) => v.value);

  it('takes one object, one array, or values back to back and per line', () => {
    assert.deepEqual(values('{"a":1}'), [{ a: 1 }]);
    assert.deepEqual(values(' [{"a":1},{"b":2}] '), [[{ a: 1 }, { b: 2 }]]);
    assert.deepEqual(values('{"a":1}{"b":2}'), [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(values('{"a":1}\r\n\n{"b":2}\n'), [{ a: 1 }, { b: 2 }]);
    assert.deepEqual(values('[{"a":1}]\n[{"b":2}]'), [[{ a: 1 }], [{ b: 2 }]]);
  });

  it('is not fooled by brackets, quotes and backslashes inside strings', () => {
    assert.deepEqual(values('{"a":"}{]["}{"b":"x\\"}{"}'), [{ a: '}{][' }, { b: 'x"}{' }]);
    assert.deepEqual(values('{"a":"C:\\\\"}{"b":1}'), [{ a: 'C:\\' }, { b: 1 }]);
  });

  it('reports the byte of a syntax error, counting UTF-8 bytes', () => {
    assert.throws(
      () => values('{"a":1}\n{"b":2,}'),
      /^InputError: invalid JSON at byte 15: Expected double-quoted property name$/,
    );
    // "é" is two bytes: the error is at byte 6 of its value, though at character 5.
    assert.throws(
      () => values('{"a":1}{"é" 2}'),
      /invalid JSON at byte 13: Expected ':' after property name/,
    );
    assert.throws(() => values('{"é" 2}'), /invalid JSON at byte 6: Expected ':' after property name/);
    assert.throws(
      () => values(' [{"a":1},{"b":2,}]'),
      /invalid JSON at byte 17: Expected double-quoted property name/,
    );
  });

  it('refuses a truncated value and a scalar, without echoing the body', () => {
    assert.throws(() => values('{"a":"secret'), /invalid JSON at byte 12: unterminated string/);
    assert.throws(() => values('{"a":[1'), /invalid JSON at byte 7: unexpected end of body/);
    assert.throws(() => values('{"a":1} 42'), /expected a JSON object or array at byte 8/);
    assert.throws(
      () => values('{"a":secret}'),
      (err: Error) =>
        !err.message.includes('secret') && /value at byte 0: Unexpected token/.test(err.message),
    );
  });

  it('ends a value at a mismatched bracket so the error points at it', () => {
    assert.throws(() => values('{"a":[1}]} {"b":1}'), /invalid JSON at byte 7/);
  });
});

describe('parseForm', () => {
  it('decodes + and %XX to bytes', () => {
    const form = parseForm(Buffer.from('json=%7B%22a%22%3A+1%7D&bin=%FF%00&flag&x=%zz'));
    assert.equal(form.get('json')?.toString(), '{"a": 1}');
    assert.deepEqual(form.get('bin'), Buffer.from([0xff, 0x00]));
    assert.deepEqual(form.get('flag'), Buffer.alloc(0));
    assert.equal(form.get('x')?.toString(), '%zz');
  });
});

describe('decodeBody — JSON', () => {
  it('takes one object, an array, or Fluent Bit json_lines / json_stream', async () => {
    assert.deepEqual(records(await decode('{"msg":"hi"}', 'application/json')), [{ msg: 'hi' }]);
    assert.equal((await decode('[{"n":1},{"n":2},{"n":3}]', 'application/json')).length, 3);
    assert.deepEqual(records(await decode('{"n":1}\n{"n":2}\n', 'application/json')), [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(records(await decode('{"n":1}{"n":2}', 'APPLICATION/JSON; charset=UTF-8')), [
      { n: 1 },
      { n: 2 },
    ]);
  });

  it('reads Fluent Bit out_http `format json`: an array of objects with a float date', async () => {
    const body = JSON.stringify([
      { date: 1700000000.25, log: 'a' },
      { date: 1700000001.5, log: 'b' },
    ]);
    const entries = await decode(body, 'application/json');
    assert.deepEqual(records(entries), [{ log: 'a' }, { log: 'b' }]);
    assert.deepEqual(entries[0]!.time, new EventTime(1700000000, 250_000_000));
    assert.deepEqual(entries[1]!.time, new EventTime(1700000001, 500_000_000));
  });

  it('reads NDJSON with blank lines and CRLF', async () => {
    const entries = await decode('{"n":1}\r\n\r\n  \n{"n":2}\n', 'application/x-ndjson');
    assert.deepEqual(records(entries), [{ n: 1 }, { n: 2 }]);
  });

  it('refuses an array element that is not an object', async () => {
    await rejects(decode('[{"a":1}, 2]', 'application/json'), 400, /element 1 of the array at byte 0/);
  });

  it('gives nothing for an empty body or an empty array', async () => {
    assert.deepEqual(await decode('', 'application/json'), []);
    assert.deepEqual(await decode('[]', 'application/json'), []);
    assert.deepEqual(await decode(' \n', 'application/x-ndjson'), []);
  });
});

describe('decodeBody — msgpack', () => {
  it('takes one map, an array of maps, or a stream of maps', async () => {
    assert.deepEqual(records(await decode(pack({ a: 1 }), 'application/msgpack')), [{ a: 1 }]);
    assert.deepEqual(records(await decode(pack([{ a: 1 }, { b: 2 }]), 'application/x-msgpack')), [
      { a: 1 },
      { b: 2 },
    ]);
    const stream = Buffer.concat([pack({ a: 1 }), pack({ b: 2 })]);
    assert.deepEqual(records(await decode(stream, 'application/msgpack')), [{ a: 1 }, { b: 2 }]);
  });

  it('takes Fluent Bit raw chunk entries with EventTime and metadata, skipping group markers', async () => {
    const t = new EventTime(1700000000, 123456789);
    const marker = (sec: number) =>
      Buffer.concat([Buffer.from([0x92, 0x92]), eventTimeBytes(new EventTime(sec, 0)), pack({}), pack({})]);
    const body = Buffer.concat([
      marker(FLUENT_BIT_GROUP_START),
      Buffer.from([0x92, 0x92]),
      eventTimeBytes(t),
      pack({ otlp: { x: 1 } }),
      pack({ log: 'a' }),
      Buffer.from([0x92]),
      eventTimeBytes(t),
      pack({ log: 'b' }),
      pack([1700000001, { log: 'c' }]),
      marker(FLUENT_BIT_GROUP_END),
    ]);
    const entries = await decode(body, 'application/msgpack');
    assert.equal(entries.length, 3);
    assert.deepEqual(entries[0], { time: t, record: { log: 'a' }, metadata: { otlp: { x: 1 } } });
    assert.deepEqual(entries[1], { time: t, record: { log: 'b' } });
    assert.deepEqual(entries[2], { time: new EventTime(1700000001, 0), record: { log: 'c' } });
  });

  it('takes the time key of a map record, EventTime included', async () => {
    const t = new EventTime(1700000000, 5);
    const body = Buffer.concat([
      Buffer.from([0x82, 0xa4]),
      Buffer.from('time'),
      eventTimeBytes(t),
      pack('m'),
      pack(1),
    ]);
    const [entry] = await decode(body, 'application/msgpack');
    assert.deepEqual(entry, { time: t, record: { m: 1 } });
  });

  it('refuses truncated msgpack and values that are not records', async () => {
    const truncated = pack({ a: 'xxxxxxxx' }).subarray(0, 5);
    await rejects(decode(truncated, 'application/msgpack'), 400, /^invalid msgpack/);
    await rejects(decode(pack('text'), 'application/msgpack'), 400, /msgpack value 0 is not a map/);
    await rejects(decode(pack(['x', { a: 1 }]), 'application/msgpack'), 400, /msgpack value 0: entry time/);
  });

  it('refuses what forward refuses: 0xC1, unknown ext types, nesting past 100, naming the offset', async () => {
    await rejects(
      decode(Buffer.from([0x81, 0xa1, 0x61, 0xc1]), 'application/msgpack'),
      400,
      /^invalid msgpack: invalid msgpack byte 0xc1 at offset 3/,
    );
    // fixext 1, type 42: msgpackr would decode it to an object of its own.
    await rejects(
      decode(Buffer.from([0x81, 0xa1, 0x61, 0xd4, 0x2a, 0x00]), 'application/msgpack'),
      400,
      /unsupported msgpack ext type 42 at offset 3/,
    );
    const deep = Buffer.concat([Buffer.alloc(101, 0x91), Buffer.from([0x80])]);
    await rejects(decode(deep, 'application/msgpack'), 400, /^invalid msgpack: /);
    const form = Buffer.from('msgpack=%81%A1a%C1');
    await rejects(decode(form, 'application/x-www-form-urlencoded'), 400, /0xc1 at offset 3/);
  });
});

/** `{"a":[[…[1]…]]}`: `depth` objects and arrays, the innermost not empty. */
const deepJson = (depth: number) => `{"a":${'['.repeat(depth - 1)}1${']'.repeat(depth - 1)}}`;
/** The same in msgpack: a map, then depth - 1 arrays of one item. */
const deepMsgpack = (depth: number) =>
  Buffer.concat([Buffer.from([0x81, 0xa1, 0x61]), Buffer.alloc(depth - 1, 0x91), Buffer.from([0x01])]);

describe('decodeBody — max_nesting_depth', () => {
  const TOO_DEEP = /^JSON nested deeper than max_nesting_depth \(100\) at byte \d+$/;

  it('takes JSON and msgpack exactly 100 deep by default and refuses 101 with 400 and the reason', async () => {
    assert.equal((await decode(deepJson(100), 'application/json')).length, 1);
    assert.equal((await decode(`[${deepJson(99)}]`, 'application/json')).length, 1);
    assert.equal((await decode(deepMsgpack(100), 'application/msgpack')).length, 1);
    await rejects(decode(deepJson(101), 'application/json'), 400, TOO_DEEP);
    // The array fast path (one big array) and a stream's later value are checked alike.
    await rejects(decode(`[{"ok":1},${deepJson(100)}]`, 'application/json'), 400, TOO_DEEP);
    await rejects(decode(`{"ok":1}\n${deepJson(101)}\n`, 'application/x-ndjson'), 400, /at byte 113$/);
    await rejects(decode(deepMsgpack(101), 'application/msgpack'), 400, /nested deeper than 100 levels/);
  });

  it('refuses 4,000 and 100,000 deep with 400, no stack overflow', async () => {
    for (const depth of [4000, 100_000]) {
      await rejects(decode(deepJson(depth), 'application/json'), 400, TOO_DEEP);
      await rejects(decode(`[${deepJson(depth)}]`, 'application/json'), 400, TOO_DEEP);
      await rejects(decode(deepMsgpack(depth), 'application/msgpack'), 400, /nested deeper than 100/);
    }
  });

  it('takes the input option, for JSON, NDJSON, msgpack and every form field', async () => {
    const opts = { maxNestingDepth: 8 };
    const form = (name: string, value: string | Buffer) =>
      `${name}=${[...Buffer.from(value)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`;
    assert.equal((await decode(deepJson(8), 'application/json', {}, opts)).length, 1);
    await rejects(
      decode(deepJson(9), 'application/json', {}, opts),
      400,
      /max_nesting_depth \(8\) at byte 12$/,
    );
    await rejects(decode(deepJson(9), 'application/x-ndjson', {}, opts), 400, /max_nesting_depth \(8\)/);
    assert.equal((await decode(deepMsgpack(8), 'application/msgpack', {}, opts)).length, 1);
    await rejects(decode(deepMsgpack(9), 'application/msgpack', {}, opts), 400, /deeper than 8 levels/);
    for (const [name, value] of [
      ['json', deepJson(9)],
      ['ndjson', deepJson(9)],
      ['msgpack', deepMsgpack(9)],
    ] as const) {
      await rejects(decode(form(name, value), undefined, {}, opts), 400, /deeper than/);
      assert.equal(
        (await decode(form(name, name === 'msgpack' ? deepMsgpack(8) : deepJson(8)), undefined, {}, opts))
          .length,
        1,
      );
    }
  });

  it('brackets inside strings do not count', async () => {
    const text = JSON.stringify({ a: '[[[[[[[[[[{{{{{{{{{{', b: ['"\\[[[[[['] });
    assert.equal((await decode(text, 'application/json', {}, { maxNestingDepth: 4 })).length, 1);
    assert.equal((await decode(`[${text}]`, 'application/json', {}, { maxNestingDepth: 4 })).length, 1);
  });
});

describe('decodeBody — forms and content types', () => {
  it('reads Fluentd form fields json=, ndjson= and msgpack=, with or without a content-type', async () => {
    const form = 'application/x-www-form-urlencoded';
    assert.deepEqual(records(await decode('json={"msg":"hi"}', form)), [{ msg: 'hi' }]);
    assert.deepEqual(records(await decode('json=%5B%7B%22a%22%3A1%7D%5D', undefined)), [{ a: 1 }]);
    assert.deepEqual(records(await decode(`ndjson=${encodeURIComponent('{"a":1}\n{"b":2}')}`, form)), [
      { a: 1 },
      { b: 2 },
    ]);
    const msgpack = [...pack({ bin: 'é' })].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    assert.deepEqual(records(await decode(`msgpack=${msgpack}`, form)), [{ bin: 'é' }]);
  });

  it('takes a form time field, as Fluentd does', async () => {
    const [entry] = await decode('json={"a":1}&time=1700000000.5', undefined);
    assert.deepEqual(entry!.time, new EventTime(1700000000, 500_000_000));
  });

  it('names the missing parameter', async () => {
    await rejects(decode('data={"a":1}', undefined), 400, /missing 'json', 'ndjson' or 'msgpack' parameter/);
  });

  it('refuses unknown content types with 415', async () => {
    await rejects(decode('hello', 'text/plain'), 415, /unsupported content-type text\/plain/);
  });
});

describe('decodeBody — time', () => {
  const one = async (record: object, options: Partial<DecodeOptions> = {}, time?: string) => {
    const [entry] = await decode(JSON.stringify(record), 'application/json', { time }, options);
    return entry!;
  };

  it('reads time_key as seconds, milliseconds, ISO 8601 with nanoseconds, or numeric text', async () => {
    assert.deepEqual((await one({ time: 1700000000, a: 1 })).time, new EventTime(1700000000, 0));
    assert.deepEqual((await one({ time: 1700000000.125 })).time, new EventTime(1700000000, 125_000_000));
    assert.deepEqual((await one({ time: 1700000000123 })).time, new EventTime(1700000000, 123_000_000));
    assert.deepEqual(
      (await one({ time: '2024-01-02T03:04:05.123456789Z' })).time,
      new EventTime(1704164645, 123456789),
    );
    assert.deepEqual(
      (await one({ time: '2024-01-02T05:04:05.5+02:00' })).time,
      new EventTime(1704164645, 500_000_000),
    );
    assert.deepEqual(
      (await one({ time: '1700000000.123456789' })).time,
      new EventTime(1700000000, 123456789),
    );
    assert.deepEqual((await one({ ts: 1700000000 }, { timeKey: 'ts' })).time, new EventTime(1700000000, 0));
  });

  it('removes the time key unless keep_time_key', async () => {
    assert.deepEqual((await one({ time: 1700000000, a: 1 })).record, { a: 1 });
    assert.deepEqual((await one({ time: 1700000000, a: 1 }, { keepTimeKey: true })).record, {
      time: 1700000000,
      a: 1,
    });
  });

  it('falls back to Fluent Bit date in every json_date_format, only when time_key is absent', async () => {
    const formats: [unknown, EventTime][] = [
      [1700000000.5, new EventTime(1700000000, 500_000_000)], // double
      [1700000000, new EventTime(1700000000, 0)], // epoch
      ['2023-11-14T22:13:20.123456Z', new EventTime(1700000000, 123456000)], // iso8601
      ['2023-11-14 22:13:20.123456', new EventTime(1700000000, 123456000)], // java_sql_timestamp
      [1700000000123, new EventTime(1700000000, 123_000_000)], // epoch_ms
    ];
    for (const [date, expected] of formats) {
      const entry = await one({ date, log: 'x' });
      assert.deepEqual(entry.time, expected, `date ${String(date)}`);
      assert.deepEqual(entry.record, { log: 'x' });
    }
    const both = await one({ time: 1600000000, date: 1700000000 });
    assert.deepEqual(both.time, new EventTime(1600000000, 0));
    assert.deepEqual(both.record, { date: 1700000000 });
  });

  it('keeps an unparsable time in the record and uses now', async () => {
    for (const bad of ['yesterday', -5, true, 1e30]) {
      const before = Date.now();
      const entry = await one({ time: bad, a: 1 });
      assertNow(entry.time, before, Date.now());
      assert.deepEqual(entry.record, { time: bad, a: 1 });
    }
  });

  it('uses now when there is no time at all', async () => {
    const before = Date.now();
    assertNow((await one({ a: 1 })).time, before, Date.now());
  });

  it('?time= sets the time of every record and leaves the records alone', async () => {
    const entries = await decode('[{"time":1,"a":1},{"b":2}]', 'application/json', { time: '1700000000.25' });
    for (const e of entries) assert.deepEqual(e.time, new EventTime(1700000000, 250_000_000));
    assert.deepEqual(records(entries), [{ time: 1, a: 1 }, { b: 2 }]);
    const raw = Buffer.concat([Buffer.from([0x92]), eventTimeBytes(new EventTime(5, 0)), pack({ a: 1 })]);
    const [entry] = await decode(raw, 'application/msgpack', { time: '1700000000' });
    assert.deepEqual(entry!.time, new EventTime(1700000000, 0));
  });

  it('?time=0 means now, as in Fluentd; garbage is refused', async () => {
    const before = Date.now();
    assertNow((await one({ a: 1 }, {}, '0')).time, before, Date.now());
    await rejects(
      decode('{"a":1}', 'application/json', { time: 'soon' }),
      400,
      /invalid time parameter "soon"/,
    );
  });
});

describe('decompress', () => {
  const json = Buffer.from('{"a":1}');
  const MAX = 1024 * 1024;

  it('undoes gzip, deflate (zlib or raw), zstd and stacked codings', async () => {
    assert.deepEqual(await decompress(zlib.gzipSync(json), 'gzip', MAX), json);
    assert.deepEqual(await decompress(zlib.gzipSync(json), 'X-GZIP', MAX), json);
    assert.deepEqual(await decompress(zlib.deflateSync(json), 'deflate', MAX), json);
    assert.deepEqual(await decompress(zlib.deflateRawSync(json), 'deflate', MAX), json);
    assert.deepEqual(await decompress(zlib.zstdCompressSync(json), 'zstd', MAX), json);
    assert.deepEqual(await decompress(zlib.zstdCompressSync(zlib.gzipSync(json)), 'gzip, zstd', MAX), json);
    assert.deepEqual(await decompress(json, 'identity', MAX), json);
  });

  it('stops a body bomb at the limit with 413', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024));
    assert.ok(bomb.length < 100_000);
    await rejects(decompress(bomb, 'gzip', MAX), 413, /exceeds max_decompressed_size \(1048576 bytes\)/);
    await rejects(decompress(zlib.zstdCompressSync(Buffer.alloc(8 * MAX)), 'zstd', MAX), 413, /exceeds/);
  });

  it('refuses corrupt data with 400 and unknown codings with 415', async () => {
    await rejects(decompress(json, 'gzip', MAX), 400, /^invalid gzip body: incorrect header check$/);
    await rejects(decompress(json, 'compress', MAX), 415, /unsupported content-encoding compress/);
  });

  it('applies through decodeBody', async () => {
    const entries = await decode(zlib.gzipSync('{"a":1}'), 'application/json', { contentEncoding: 'gzip' });
    assert.deepEqual(records(entries), [{ a: 1 }]);
  });
});
