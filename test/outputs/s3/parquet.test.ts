import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { encodeEntry } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { encodeParquet, MAX_INFERRED_COLUMNS, type ParquetJob } from '../../../src/outputs/s3/parquet.ts';

const T = new EventTime(1_700_000_000, 123_456_000);

/** The file encodeParquet makes of `entries`, read back: rows, column names and types, rejections. */
async function roundTrip(entries: Entry[], job: Partial<ParquetJob> = {}) {
  const result = encodeParquet({
    entries: Buffer.concat(entries.map(encodeEntry)),
    columns: undefined,
    dateKey: 'date',
    codec: 'snappy',
    ...job,
  });
  if (result.rows === 0) return { rows: [], columns: [], rejected: result.rejected };
  const file = result.body.buffer.slice(
    result.body.byteOffset,
    result.body.byteOffset + result.body.byteLength,
  ) as ArrayBuffer;
  const columns = parquetMetadata(file)
    .schema.slice(1)
    .map((e) => [e.name, e.logical_type?.type ?? e.converted_type ?? e.type]);
  return { rows: await parquetReadObjects({ file }), columns, rejected: result.rejected };
}

describe('parquet encoding (s3 format: parquet)', () => {
  it('an integer past int64 (a uint64 id) makes a text column, not a rejection', async () => {
    const got = await roundTrip([
      { time: T, record: { id: 18_000_000_000_000_000_000n } },
      { time: T, record: { id: 7 } },
    ]);
    assert.deepEqual(got.rejected, []);
    assert.deepEqual(got.columns, [
      ['date', 'TIMESTAMP'],
      ['id', 'UTF8'],
    ]);
    assert.deepEqual(
      got.rows.map((r) => r.id),
      ['18000000000000000000', '7'],
    );
  });

  it("json_date_key: the timestamp column is every record's; a record's own time field fills it for that record", async () => {
    const got = await roundTrip([
      { time: T, record: { msg: 'a', date: '2024-01-02T03:04:05.5Z' } },
      { time: T, record: { msg: 'b' } },
      { time: T, record: { msg: 'c', date: 'not a time' } },
    ]);
    assert.deepEqual(got.columns, [
      ['date', 'TIMESTAMP'],
      ['msg', 'UTF8'],
    ]);
    assert.deepEqual(
      got.rows.map((r) => [r.msg, (r.date as Date).toISOString()]),
      [
        ['a', '2024-01-02T03:04:05.500Z'],
        ['b', '2023-11-14T22:13:20.123Z'],
      ],
    );
    assert.deepEqual(got.rejected, [
      {
        index: 2,
        reason: 'field "date" (json_date_key): a parquet timestamp column cannot hold "not a time"',
      },
    ]);
  });

  it(`past ${MAX_INFERRED_COLUMNS} distinct keys, the rest go into one _extra column as JSON`, async () => {
    const entries: Entry[] = Array.from({ length: MAX_INFERRED_COLUMNS + 10 }, (_, i) => ({
      time: T,
      record: { [`k${i}`]: i },
    }));
    const got = await roundTrip(entries, { dateKey: false });
    assert.equal(got.columns.length, MAX_INFERRED_COLUMNS + 1);
    assert.deepEqual(got.columns.at(-1), ['_extra', 'UTF8']);
    const last = got.rows.at(-1)!;
    assert.equal(last._extra, `{"k${MAX_INFERRED_COLUMNS + 9}":${MAX_INFERRED_COLUMNS + 9}}`);
    assert.equal(got.rows[0]!.k0, 0n);
    assert.equal(got.rows[0]!._extra, null);
  });
});
