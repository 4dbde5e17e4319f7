import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchesOf, makeChunk } from '../../src/buffer/chunk.ts';
import { makeBatch } from '../../src/core/batch.ts';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { toJson } from '../../src/core/to-json.ts';
import { type Format, formatChunk } from '../../src/outputs/format.ts';

const time = new EventTime(1_700_000_000, 123_456_789);
const entry: TaggedEntry = { tag: 'app.web', time, record: { msg: 'hi', n: 1 } };

/** The lines the stdout and file outputs write for these entries (through their msgpack). */
function formatLines(format: Format, entries: readonly TaggedEntry[]): string {
  return formatChunk(format, makeChunk('c', batchesOf(entries), 0)).bytes.toString('utf8');
}

function formatLine(format: Format, one: TaggedEntry): string {
  return formatLines(format, [one]);
}

describe('formatLine', () => {
  it('json: tag, nanosecond time and record', () => {
    assert.equal(
      formatLine('json', entry),
      '{"tag":"app.web","time":"2023-11-14T22:13:20.123456789Z","record":{"msg":"hi","n":1}}\n',
    );
  });

  it('json: keeps Fluent Bit metadata', () => {
    assert.equal(
      formatLine('json', { ...entry, metadata: { otlp: { severity: 9 } } }),
      '{"tag":"app.web","time":"2023-11-14T22:13:20.123456789Z","record":{"msg":"hi","n":1},"metadata":{"otlp":{"severity":9}}}\n',
    );
  });

  it('json: pads small nanoseconds to nine digits', () => {
    const line = formatLine('json', { ...entry, time: new EventTime(1_700_000_000, 5) });
    assert.match(line, /"time":"2023-11-14T22:13:20\.000000005Z"/);
  });

  it('record: the record alone', () => {
    assert.equal(formatLine('record', entry), '{"msg":"hi","n":1}\n');
  });

  it('fluentd: time, tag and json separated by tabs', () => {
    assert.equal(
      formatLine('fluentd', entry),
      '2023-11-14T22:13:20.123456789Z\tapp.web\t{"msg":"hi","n":1}\n',
    );
  });

  it('escapes tags that need it', () => {
    const line = formatLine('json', { ...entry, tag: 'a"b\\c' });
    assert.equal(JSON.parse(line).tag, 'a"b\\c');
  });

  it('joins lines in order, across tags', () => {
    const second = { ...entry, tag: 'other', record: { msg: 'bye' } };
    assert.equal(formatLines('record', [entry, second]), '{"msg":"hi","n":1}\n{"msg":"bye"}\n');
    assert.equal(
      formatLines('fluentd', [entry, second, entry]),
      '2023-11-14T22:13:20.123456789Z\tapp.web\t{"msg":"hi","n":1}\n' +
        '2023-11-14T22:13:20.123456789Z\tother\t{"msg":"bye"}\n' +
        '2023-11-14T22:13:20.123456789Z\tapp.web\t{"msg":"hi","n":1}\n',
    );
    assert.equal(formatLines('json', []), '');
  });

  it('rejects alone a record no encoding can take, and writes the rest', () => {
    const good = makeBatch('t', [{ time, record: { a: 1 } }]);
    // {"a": [[[…1…]]]} 5,000 deep (an input's max_nesting_depth allows up to 10,000): more
    // than JSON.stringify can recurse through.
    const bad = Buffer.concat([
      Buffer.from('92d70065538f00075bcd1581a161', 'hex'),
      Buffer.alloc(5000, 0x91),
      Buffer.from([1]),
    ]);
    const payload = Buffer.concat([good.payload, bad, good.payload]);
    const chunk = makeChunk('c', [{ tag: 't', payload, count: 3, bytes: payload.length }], 0);
    const { bytes, rejected } = formatChunk('record', chunk);
    assert.equal(bytes.toString(), '{"a":1}\n{"a":1}\n');
    assert.equal(rejected.length, 1);
    assert.match(
      rejected[0]!.reason,
      /^cannot encode the record: EncodeError: nested too deep to write as JSON$/,
    );
  });

  it('rejects alone an entry whose time no RFC 3339 can print (buffered as epoch nanoseconds)', () => {
    const good = makeBatch('t', [{ time, record: { a: 1 } }]);
    // [1.7e18 as uint64, {"bad":1}]: the decoder gives a BigInt time, the cursor a number.
    const bad = Buffer.from('92cf17a2b3c4d5e6f70081a362616401', 'hex');
    const payload = Buffer.concat([good.payload, bad, good.payload]);
    const chunk = makeChunk('c', [{ tag: 't', payload, count: 3, bytes: payload.length }], 0);
    for (const format of ['json', 'fluentd'] as const) {
      const { bytes, rejected } = formatChunk(format, chunk);
      assert.equal(bytes.toString().split('\n').length, 3, 'two lines written');
      assert.equal(rejected.length, 1);
      assert.deepEqual(rejected[0]!.entry.record, { bad: 1 });
      assert.match(rejected[0]!.reason, /EncodeError: time \d+ s is out of range/);
    }
    assert.equal(formatChunk('record', chunk).rejected.length, 0);
  });

  it('takes entries with integer and float times, as Fluentd peers send them', () => {
    // [1700000000, {"a":1}] and [1700000000.5, {"a":2}]
    const payload = Buffer.from('92ce6553f10081a1610192cb41d954fc40200000 81a16102'.replace(' ', ''), 'hex');
    const chunk = makeChunk('c', [{ tag: 't', payload, count: 2, bytes: payload.length }], 0);
    assert.equal(
      formatChunk('fluentd', chunk).bytes.toString(),
      '2023-11-14T22:13:20.000000000Z\tt\t{"a":1}\n2023-11-14T22:13:20.500000000Z\tt\t{"a":2}\n',
    );
  });
});

describe('toJson', () => {
  it('writes BigInt as an exact number', () => {
    assert.equal(
      toJson({ id: 18_446_744_073_709_551_615n, small: 5n }),
      '{"id":18446744073709551615,"small":5}',
    );
  });

  it('writes valid UTF-8 binary as text, anything else as base64', () => {
    const record = {
      text: Buffer.from('héllo', 'utf8'),
      raw: new Uint8Array([0xff, 0xfe, 0x00]),
      nested: [{ b: Buffer.from('x') }],
    };
    assert.equal(toJson(record), '{"text":"héllo","raw":"//4A","nested":[{"b":"x"}]}');
  });

  it('reads binary views at their offset', () => {
    const backing = Buffer.from('xxabcxx');
    assert.equal(toJson({ v: backing.subarray(2, 5) }), '{"v":"abc"}');
  });

  it('writes nested EventTimes as RFC 3339 without losing nanoseconds', () => {
    assert.equal(toJson({ at: time }), '{"at":"2023-11-14T22:13:20.123456789Z"}');
  });

  it('encodes records as they come out of msgpack', () => {
    const chunk = makeChunk(
      'c1',
      [makeBatch('bin', [{ time, record: { b: Buffer.from([0xc3, 0x28]) } }])],
      0,
    );
    assert.equal(formatLine('record', chunk.entries()[0]!), '{"b":"wyg="}\n');
  });

  it('keeps what JSON already handles', () => {
    const record = { s: 'x', n: 1.5, t: true, z: null, a: [1, 'two'], d: new Date(0) };
    assert.equal(toJson(record), JSON.stringify(record));
  });
});
