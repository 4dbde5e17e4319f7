import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import type { TaggedEntry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import {
  encodeJson,
  encodeProtobuf,
  encodeRequest,
  formatLine,
  type LineSettings,
  labelsText,
  lineOf,
  lokiEntry,
  planRequests,
  pushOrder,
  pushRequest,
  shapeRecord,
  unixNanos,
} from '../../../src/outputs/loki/encode.ts';
import { labelKey, recordKey } from '../../../src/outputs/loki/labels.ts';
import { parseLabelText, snappyDecode } from '../../support/loki-fake.ts';

const PushRequest = protobuf
  .loadSync(fileURLToPath(new URL('../../../src/outputs/loki/push.proto', import.meta.url)))
  .lookupType('logproto.PushRequest');

interface Decoded {
  streams: {
    labels: string;
    entries: {
      timestamp: { seconds: string; nanos: number };
      line: string;
      structuredMetadata: { name: string; value: string }[];
    }[];
  }[];
}

/** The protobuf as protobufjs reads it from push.proto: nothing shared with the hand encoder. */
function decode(bytes: Uint8Array): Decoded {
  return PushRequest.toObject(PushRequest.decode(bytes), { longs: String, defaults: true }) as Decoded;
}

const tagged = (
  sec: number,
  nsec: number,
  record: Record<string, unknown> = {},
  tag = 'app',
): TaggedEntry => ({
  tag,
  time: new EventTime(sec, nsec),
  record,
});

const settings = (over: Partial<LineSettings> = {}): LineSettings => ({
  lineFormat: 'json',
  dropSingleKey: false,
  removeKeys: [],
  structuredMetadata: [],
  ...over,
});

describe('loki encode: the line', () => {
  it('json: the record as JSON, binary as text, big integers exact', () => {
    assert.equal(
      formatLine({ msg: 'hi', n: 10n ** 20n, bin: Buffer.from('b') }, 'json', false),
      '{"msg":"hi","n":100000000000000000000,"bin":"b"}',
    );
  });

  it('key_value: pairs in record order, quoted only when needed (so logfmt parsers read them back), maps as JSON', () => {
    const line = formatLine(
      {
        level: 'info',
        msg: 'order paid',
        n: 3,
        ok: true,
        none: null,
        empty: '',
        q: 'say "hi"',
        m: { a: 1 },
        'odd key': 'x=y',
      },
      'key_value',
      false,
    );
    assert.equal(
      line,
      'level=info msg="order paid" n=3 ok=true none=null empty="" q="say \\"hi\\"" m="{\\"a\\":1}" odd_key="x=y"',
    );
  });

  it('drop_single_key: true writes the value as the format would, raw a string as it is', () => {
    const one = { log: 'GET /health 200' };
    assert.equal(formatLine(one, 'json', false), '{"log":"GET /health 200"}');
    assert.equal(formatLine(one, 'json', true), '"GET /health 200"');
    assert.equal(formatLine(one, 'json', 'raw'), 'GET /health 200');
    assert.equal(formatLine(one, 'key_value', true), '"GET /health 200"');
    assert.equal(formatLine({ log: 'plain' }, 'key_value', true), 'plain');
    assert.equal(formatLine({ n: 42 }, 'json', 'raw'), '42', 'raw only unquotes strings');
    assert.equal(formatLine({ m: { a: [1] } }, 'json', 'raw'), '{"a":[1]}');
    assert.equal(formatLine({ a: 1, b: 2 }, 'json', 'raw'), '{"a":1,"b":2}', 'two keys: the whole record');
  });

  it('label keys, remove_keys and structured metadata leave the line; the record itself is untouched', () => {
    const record = {
      log: 'x',
      stream: 'stdout',
      trace_id: 'abc',
      kubernetes: { pod_id: 'p1', pod_name: 'web-1' },
    };
    const copy = structuredClone(record);
    const shaped = shapeRecord(
      record,
      [['stream']],
      settings({ removeKeys: [recordKey('kubernetes.pod_id')], structuredMetadata: [labelKey('trace_id')] }),
    );
    assert.equal(shaped.line, '{"log":"x","kubernetes":{"pod_name":"web-1"}}');
    assert.deepEqual(shaped.metadata, [['trace_id', 'abc']]);
    assert.deepEqual(record, copy);
    const single = shapeRecord(
      record,
      [['stream']],
      settings({ removeKeys: [['kubernetes'], ['trace_id']], dropSingleKey: 'raw' }),
    );
    assert.equal(single.line, 'x', 'drop_single_key looks at what is left');
  });
});

describe('loki encode: streams and requests', () => {
  it('labels as Loki writes them: sorted, values escaped', () => {
    const e = lokiEntry(
      tagged(1, 0),
      undefined,
      [
        ['job', 'a'],
        ['app', 'say "hi"\n\\'],
      ],
      'l',
      [],
    );
    assert.equal(e.stream, '{app="say \\"hi\\"\\n\\\\", job="a"}');
    assert.deepEqual(parseLabelText(e.stream), [
      ['app', 'say "hi"\n\\'],
      ['job', 'a'],
    ]);
    assert.equal(labelsText([]), '{}');
  });

  it('groups by tenant, then label set; sorts each stream by time to the nanosecond, ties in arrival order', () => {
    const mk = (tenant: string | undefined, app: string, sec: number, nsec: number, line: string) =>
      lokiEntry(tagged(sec, nsec), tenant, [['app', app]], line, []);
    const requests = planRequests(
      [
        mk('t1', 'a', 10, 500, 'a3'),
        mk('t2', 'a', 5, 0, 'x1'),
        mk('t1', 'b', 10, 0, 'b1'),
        mk('t1', 'a', 10, 499, 'a2'),
        mk(undefined, 'a', 1, 0, 'n1'),
        mk('t1', 'a', 9, 999_999_999, 'a1'),
        mk('t1', 'a', 10, 500, 'a4'),
      ],
      1 << 20,
    );
    assert.deepEqual(
      requests.map((r) => [
        r.tenant,
        r.streams.map((s) => [s.stream, s.entries.map((e) => lineOf(e).toString())]),
      ]),
      [
        [
          't1',
          [
            ['{app="a"}', ['a1', 'a2', 'a3', 'a4']],
            ['{app="b"}', ['b1']],
          ],
        ],
        ['t2', [['{app="a"}', ['x1']]]],
        [undefined, [['{app="a"}', ['n1']]]],
      ],
    );
  });

  it('cuts requests at batch_size bytes of protobuf; a stream spread over requests stays in time order', () => {
    const entries = Array.from({ length: 100 }, (_, i) =>
      lokiEntry(tagged(1_800_000_000 + (99 - i), 0), undefined, [['s', String(i % 2)]], 'x'.repeat(90), []),
    );
    const requests = planRequests(entries, 2000);
    assert.ok(requests.length >= 5, `${requests.length} requests`);
    for (const r of requests) {
      const bytes = encodeProtobuf(r).length;
      assert.ok(bytes <= 2000, `a request of ${bytes} bytes`);
      assert.ok(r.bytes >= bytes, 'the planned size bounds the real one');
    }
    assert.equal(
      requests.reduce((n, r) => n + r.count, 0),
      100,
    );
    for (const s of ['0', '1']) {
      const times = requests.flatMap((r) =>
        r.streams.filter((x) => x.labels[0]![1] === s).flatMap((x) => x.entries.map((e) => e.sec)),
      );
      assert.deepEqual(
        times,
        [...times].sort((a, b) => a - b),
      );
      assert.equal(times.length, 50);
    }
    const big = lokiEntry(tagged(1, 0), undefined, [['s', '0']], 'y'.repeat(5000), []);
    const alone = planRequests([entries[0]!, big, entries[2]!], 2000);
    assert.deepEqual(
      alone.map((r) => r.count),
      [1, 2],
      'an entry over batch_size goes alone',
    );
    // A 413 halves a push by slicing the push order: any slice is a push of its own.
    const ordered = pushOrder(entries);
    for (const part of [ordered.slice(0, 7), ordered.slice(7, 60), ordered.slice(60)]) {
      const push = pushRequest(part);
      assert.equal(push.count, part.length);
      assert.ok(push.bytes >= encodeProtobuf(push).length, 'the planned size bounds the real one');
      assert.deepEqual(
        push.streams.flatMap((s) => s.entries),
        part,
        'streams keep the order',
      );
    }
  });
});

describe('loki encode: bodies', () => {
  const entries = [
    lokiEntry(tagged(1_700_000_000, 5), undefined, [['a', 'b']], 'hi', [['x', 'y']]),
    lokiEntry(tagged(1_700_000_001, 0), undefined, [['a', 'b']], 'ünïcödé ✓', []),
    lokiEntry(tagged(1_700_000_000, 123_456_789), undefined, [['a', 'c']], '', []),
    lokiEntry(tagged(0, 0), undefined, [['a', 'c']], 'epoch', []),
  ];
  const request = planRequests(entries, 1 << 20)[0]!;

  it('protobuf: the bytes protobufjs writes for the same message (golden)', () => {
    const one = planRequests([entries[0]!], 1 << 20)[0]!;
    assert.equal(
      encodeProtobuf(one).toString('hex'),
      '0a210a077b613d2262227d12160a080880e2cfaa061005120268691a060a0178120179',
    );
  });

  it('protobuf: decoded from push.proto by protobufjs, every field in place', () => {
    assert.deepEqual(decode(encodeProtobuf(request)), {
      streams: [
        {
          labels: '{a="b"}',
          hash: '0',
          entries: [
            {
              timestamp: { seconds: '1700000000', nanos: 5 },
              line: 'hi',
              structuredMetadata: [{ name: 'x', value: 'y' }],
            },
            { timestamp: { seconds: '1700000001', nanos: 0 }, line: 'ünïcödé ✓', structuredMetadata: [] },
          ],
        },
        {
          labels: '{a="c"}',
          hash: '0',
          entries: [
            { timestamp: { seconds: '0', nanos: 0 }, line: 'epoch', structuredMetadata: [] },
            { timestamp: { seconds: '1700000000', nanos: 123456789 }, line: '', structuredMetadata: [] },
          ],
        },
      ],
    } as unknown as Decoded);
  });

  it('protobuf bodies are snappy block format: the fake’s own decoder and snappyjs both read them', () => {
    const body = encodeRequest(request, 'protobuf');
    assert.equal(body.contentType, 'application/x-protobuf');
    const raw = encodeProtobuf(request);
    assert.deepEqual(snappyDecode(body.body), raw);
    assert.deepEqual(Buffer.from(snappy.uncompress(body.body)), raw);
    const repetitive = Buffer.from('loki '.repeat(20_000) + [...Array(3000).keys()].join(','));
    const packed = snappy.compress(repetitive);
    assert.ok(packed.length < repetitive.length / 4, 'copies, not only literals');
    assert.deepEqual(snappyDecode(packed), repetitive);
  });

  it('json: streams with label maps, nanosecond strings exact, metadata only when there is some', () => {
    const body = encodeRequest(request, 'json');
    assert.equal(body.contentType, 'application/json');
    assert.deepEqual(JSON.parse(body.body.toString()), {
      streams: [
        {
          stream: { a: 'b' },
          values: [
            ['1700000000000000005', 'hi', { x: 'y' }],
            ['1700000001000000000', 'ünïcödé ✓'],
          ],
        },
        {
          stream: { a: 'c' },
          values: [
            ['0', 'epoch'],
            ['1700000000123456789', ''],
          ],
        },
      ],
    });
    assert.equal(encodeJson(request).toString(), body.body.toString());
  });

  it('nanoseconds from EventTime without a float on the way', () => {
    assert.equal(unixNanos(new EventTime(4_102_444_800, 999_999_999)), '4102444800999999999');
    assert.equal(unixNanos(new EventTime(0, 7)), '7');
  });
});
