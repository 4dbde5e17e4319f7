import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { SchemaElement } from 'hyparquet';
import { ByteWriter, parquetWrite } from 'hyparquet-writer';
import type { LogRecord } from '../../core/entry.ts';
import { EntryCursor } from '../../core/entry-cursor.ts';
import { EventTime } from '../../core/event-time.ts';
import { toJson } from '../../core/to-json.ts';
import { encodeFailure } from '../format.ts';
import type { ParquetType } from './config.ts';

/** Parquet's own compression of each column chunk (the object gets no Content-Encoding). */
export type ParquetCodec = 'gzip' | 'zstd' | 'snappy' | 'none';

export interface ParquetJob {
  /** Whole entries (`[time, record]` msgpack values, one after the other): one object's worth. */
  entries: Uint8Array;
  /** Columns in order; undefined: inferred from the records' top-level keys. */
  columns: { name: string; type: ParquetType }[] | undefined;
  /** A first column holding each entry's time (`json_date_key`), unless false or the record has the key. */
  dateKey: string | false;
  codec: ParquetCodec;
}

export interface ParquetResult {
  /** The file; empty when no row could be written. */
  body: Uint8Array;
  rows: number;
  /** Entries (numbered from 0) that a column cannot hold, with why. */
  rejected: { index: number; reason: string }[];
}

const CODEC = { gzip: 'GZIP', zstd: 'ZSTD', snappy: 'SNAPPY', none: 'UNCOMPRESSED' } as const;
const COMPRESSORS = {
  GZIP: (bytes: Uint8Array) => new Uint8Array(gzipSync(bytes)),
  ZSTD: (bytes: Uint8Array) => new Uint8Array(zstdCompressSync(bytes)),
};

type Cell = string | number | bigint | boolean | null;

/** A value a column of this type cannot hold: the record is refused with this reason. */
class CellError extends Error {}

/**
 * One parquet file from a group of entries. Synchronous and CPU-bound: it runs in a worker
 * thread (parquet-worker.ts), never on the event loop.
 */
export function encodeParquet(job: ParquetJob): ParquetResult {
  // Entry by entry, so that one the decoder refuses (too deep for its stack) is rejected alone.
  const rows: { index: number; time: EventTime; record: LogRecord }[] = [];
  const rejected: ParquetResult['rejected'] = [];
  const cursor = new EntryCursor(job.entries);
  for (let index = 0; cursor.next(); index++) {
    try {
      const { time, record } = cursor.decode('');
      rows.push({ index, time, record });
    } catch (err) {
      rejected.push({ index, reason: encodeFailure(err) });
    }
  }
  const columns = job.columns ?? inferColumns(rows);
  const dateKey = job.dateKey !== false && !columns.some((c) => c.name === job.dateKey) ? job.dateKey : false;
  if (columns.length === 0 && dateKey === false) {
    // A parquet file needs a column: records with no fields, and no time column, have none.
    for (const { index } of rows)
      rejected.push({ index, reason: 'the record has no fields to make parquet columns of' });
    return { body: new Uint8Array(0), rows: 0, rejected };
  }
  const data: Cell[][] = columns.map(() => []);
  const dates: bigint[] = [];
  const cells: Cell[] = new Array(columns.length);
  let written = 0;
  for (const { index, time, record } of rows) {
    let refused: string | undefined;
    for (const [i, column] of columns.entries()) {
      try {
        cells[i] = Object.hasOwn(record, column.name) ? cell(record[column.name], column.type) : null;
      } catch (err) {
        refused =
          err instanceof CellError
            ? `field ${JSON.stringify(column.name)}: ${err.message}`
            : encodeFailure(err);
        break;
      }
    }
    if (refused !== undefined) {
      rejected.push({ index, reason: refused });
      continue;
    }
    for (let i = 0; i < columns.length; i++) data[i]!.push(cells[i]!);
    written += 1;
    if (dateKey !== false) dates.push(micros(time));
  }
  rejected.sort((a, b) => a.index - b.index);
  if (written === 0) return { body: new Uint8Array(0), rows: 0, rejected };

  const schema: SchemaElement[] = [
    { name: 'root', num_children: columns.length + (dateKey === false ? 0 : 1) },
  ];
  const columnData: { name: string; data: Cell[] | bigint[] }[] = [];
  if (dateKey !== false) {
    schema.push({ name: dateKey, repetition_type: 'OPTIONAL', ...ELEMENT.timestamp });
    columnData.push({ name: dateKey, data: dates });
  }
  for (const [i, column] of columns.entries()) {
    schema.push({ name: column.name, repetition_type: 'OPTIONAL', ...ELEMENT[column.type] });
    columnData.push({ name: column.name, data: data[i]! });
  }
  const writer = new ByteWriter();
  parquetWrite({
    writer,
    schema,
    columnData,
    codec: CODEC[job.codec],
    compressors: COMPRESSORS,
    // One row group per object up to a million rows: Athena splits work by row group, and
    // an object is one chunk (64 MiB by default), so there is little to split.
    rowGroupSize: 1_000_000,
    createdBy: 'estuary',
  });
  return { body: new Uint8Array(writer.getBuffer()), rows: written, rejected };
}

const ELEMENT: Record<ParquetType, Omit<SchemaElement, 'name'>> = {
  string: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
  json: { type: 'BYTE_ARRAY', converted_type: 'UTF8' },
  boolean: { type: 'BOOLEAN' },
  int32: { type: 'INT32' },
  int64: { type: 'INT64' },
  float: { type: 'FLOAT' },
  double: { type: 'DOUBLE' },
  timestamp: {
    type: 'INT64',
    converted_type: 'TIMESTAMP_MICROS',
    logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
  },
};

/** Microseconds since the epoch, as a `timestamp` column holds them. */
function micros(time: EventTime): bigint {
  return BigInt(time.sec) * 1_000_000n + BigInt(Math.floor(time.nsec / 1000));
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** `value` as a column of `type` holds it; null stays null; throws CellError when it cannot. */
function cell(value: unknown, type: ParquetType): Cell {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'string':
      return typeof value === 'string' ? value : toJson(value);
    case 'json':
      return toJson(value);
    case 'boolean':
      if (typeof value === 'boolean') return value;
      break;
    case 'int32':
      if (typeof value === 'number' && Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX)
        return value;
      break;
    case 'int64':
      if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
      if (typeof value === 'bigint' && value >= INT64_MIN && value <= INT64_MAX) return value;
      break;
    case 'float':
    case 'double':
      if (typeof value === 'number') return value;
      if (typeof value === 'bigint') return Number(value);
      break;
    case 'timestamp': {
      if (value instanceof EventTime) return micros(value);
      // Epoch seconds (a float keeps the fraction), as a time_key in a record usually is.
      if (typeof value === 'number' && Number.isSafeInteger(Math.round(value * 1e6)))
        return BigInt(Math.round(value * 1e6));
      if (typeof value === 'string') {
        const ms = Date.parse(value);
        if (!Number.isNaN(ms)) return BigInt(ms) * 1000n + subMillisMicros(value);
      }
      break;
    }
  }
  throw new CellError(`a parquet ${type} column cannot hold ${describe(value)}`);
}

/** The digits past milliseconds in an RFC 3339 fraction (`.123456Z` → 456), which Date.parse drops. */
function subMillisMicros(text: string): bigint {
  const fraction = /\.(\d+)/.exec(text)?.[1];
  return fraction && fraction.length > 3 ? BigInt(fraction.slice(3, 6).padEnd(3, '0')) : 0n;
}

function describe(value: unknown): string {
  const json = toJson(value);
  return json.length > 64 ? `${json.slice(0, 61)}...` : json;
}

/**
 * Columns from the records' top-level keys, in the order they first come: a column whose
 * values are all of one kind gets that type (string, boolean, int64, double — integers and
 * fractions together make a double), anything else (maps, arrays, mixed kinds) is a string
 * column of JSON text, strings as they are.
 */
function inferColumns(rows: readonly { record: LogRecord }[]): { name: string; type: ParquetType }[] {
  const kinds = new Map<string, number>();
  for (const { record } of rows) {
    for (const key of Object.keys(record)) kinds.set(key, (kinds.get(key) ?? 0) | kindOf(record[key]));
  }
  return [...kinds].map(([name, kind]) => ({ name, type: typeOf(kind) }));
}

const STRING = 1;
const BOOLEAN = 2;
const INTEGER = 4;
const FRACTION = 8;
const BIG = 16;
const OTHER = 32;

function kindOf(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return STRING;
    case 'boolean':
      return BOOLEAN;
    case 'number':
      return Number.isSafeInteger(value) ? INTEGER : FRACTION;
    case 'bigint':
      return BIG;
    default:
      return value === null || value === undefined ? 0 : OTHER;
  }
}

function typeOf(kind: number): ParquetType {
  switch (kind) {
    case BOOLEAN:
      return 'boolean';
    case INTEGER:
    case BIG:
    case INTEGER | BIG:
      return 'int64';
    case FRACTION:
    case INTEGER | FRACTION:
      return 'double';
    default:
      // Strings, nothing but nulls, or a mix: text keeps every value as it was.
      return 'string';
  }
}
