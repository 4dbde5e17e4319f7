import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeBatch } from '../../../src/core/batch.ts';
import type { LogRecord } from '../../../src/core/entry.ts';
import { EntryCursor } from '../../../src/core/entry-cursor.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { JsonBuffer } from '../../../src/core/json-buffer.ts';
import { RecordEncoder, type RecordFormat } from '../../../src/outputs/aws-records/encode.ts';

/**
 * The record encoding firehose and kinesis_streams share: the byte path (JSON written from
 * msgpack) gives what the decoded path gives, record for record. `replace_dots: "."` renames
 * nothing but sends every record through the decoded path: the reference.
 */

const T = new EventTime(1_700_000_000, 5_000_000);

function encode(records: LogRecord[], format: Partial<RecordFormat>): string[] {
  const encoder = new RecordEncoder({
    timeKey: undefined,
    timeKeyFormat: '%Y-%m-%dT%H:%M:%S.%3N',
    logKey: undefined,
    appendNewline: true,
    replaceDots: undefined,
    ...format,
  });
  const batch = makeBatch(
    'app',
    records.map((record) => ({ time: T, record })),
  );
  const cursor = new EntryCursor(batch.payload);
  const out: string[] = [];
  while (cursor.next()) {
    const buf = new JsonBuffer(64);
    encoder.write(buf, 'app', cursor);
    out.push(buf.view().toString());
  }
  return out;
}

const records: LogRecord[] = [
  {},
  { msg: 'plain' },
  { msg: 'é 😀 "quoted" \\ \n\t', level: 'info' },
  { n: 1.5, big: 2n ** 60n, neg: -3, t: true, f: false, z: null },
  { nested: { a: [1, { b: 'c' }], e: {} }, bin: new Uint8Array([0xff, 0x00, 0x01]) },
  { '1': 'integer-like key', a: 2 },
  { when: new EventTime(1_600_000_000, 1) },
  { time: 'its own' },
  Object.fromEntries([
    ['__proto__', { x: 1 }],
    ['k', 'v'],
  ]),
];

describe('aws-records encoding: the byte path and the decoded path agree', () => {
  for (const timeKey of [undefined, 'time', '@timestamp']) {
    it(`time_key ${timeKey ?? 'unset'}`, () => {
      const fast = encode(records, { timeKey });
      const decoded = encode(records, { timeKey, replaceDots: '.' });
      assert.deepEqual(fast, decoded);
      assert.equal(fast[0], timeKey === undefined ? '{}\n' : `{"${timeKey}":"2023-11-14T22:13:20.005"}\n`);
    });
  }

  it('a record with the time_key keeps its own value', () => {
    assert.deepEqual(encode([{ time: 'its own' }], { timeKey: 'time' }), ['{"time":"its own"}\n']);
  });

  it('a time_key a JavaScript object treats specially is still just a key', () => {
    assert.deepEqual(encode([{ a: 1 }], { timeKey: '__proto__' }), [
      '{"a":1,"__proto__":"2023-11-14T22:13:20.005"}\n',
    ]);
  });
});
