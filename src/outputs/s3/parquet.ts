import { gzipSync, zstdCompressSync } from 'node:zlib';
import type { SchemaElement } from 'hyparquet';
import { ByteWriter, parquetWrite } from 'hyparquet-writer';
import type { LogRecord } from '../../core/entry.ts';
import { EntryCursor } from '../../core/entry-cursor.ts';
import type { EventTime } from '../../core/event-time.ts';
import { parseTime } from '../../core/parse-time.ts';
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
  const dateKey =
    job.dateKey !== false && !job.columns?.some((c) => c.name === job.dateKey) ? job.dateKey : false;
  const { columns, extra } = job.columns
    ? { columns: job.columns, extra: false }
    : inferColumns(rows, dateKey === false ? undefined : dateKey);
  if (columns.length === 0 && dateKey === false && !extra) {
    // A parquet file needs a column: records with no fields, and no time column, have none.
    for (const { index } of rows)
      rejected.push({ index, reason: 'the record has no fields to make parquet columns of' });
    return { body: new Uint8Array(0), rows: 0, rejected };
  }
  const named = new Set(columns.map((c) => c.name));
  if (dateKey !== false) named.add(dateKey);
  const extras: Cell[] = [];
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
    let date = micros(time);
    if (dateKey !== false && Object.hasOwn(record, dateKey) && record[dateKey] != null) {
      // A record with a time field of its own keeps it, as json_lines does.
      try {
        date = cell(record[dateKey], 'timestamp') as bigint;
      } catch (err) {
        rejected.push({
          index,
          reason: `field ${JSON.stringify(dateKey)} (json_date_key): ${(err as Error).message}`,
        });
        continue;
      }
    }
    for (let i = 0; i < columns.length; i++) data[i]!.push(cells[i]!);
    written += 1;
    if (dateKey !== false) dates.push(date);
    if (extra) extras.push(extraOf(record, named));
  }
  rejected.sort((a, b) => a.index - b.index);
  if (written === 0) return { body: new Uint8Array(0), rows: 0, rejected };

  const schema: SchemaElement[] = [
    { name: 'root', num_children: columns.length + (dateKey === false ? 0 : 1) + (extra ? 1 : 0) },
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
  if (extra) {
    schema.push({ name: EXTRA_COLUMN, repetition_type: 'OPTIONAL', ...ELEMENT.json });
    columnData.push({ name: EXTRA_COLUMN, data: extras });
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
      // An EventTime, epoch seconds / ms / µs / ns, or RFC 3339 text, as the HTTP input reads times.
      const time = parseTime(value);
      if (time) return micros(time);
      break;
    }
  }
  throw new CellError(`a parquet ${type} column cannot hold ${describe(value)}`);
}

function describe(value: unknown): string {
  const json = toJson(value);
  return json.length > 64 ? `${json.slice(0, 61)}...` : json;
}

/**
 * Inferred columns at most, and cells (rows × columns) at most: keys past them go, as JSON,
 * into one `_extra` column, so memory follows the records' bytes, not how many distinct keys
 * they bring (a log of ids as keys would make a file of unbounded width).
 */
export const MAX_INFERRED_COLUMNS = 256;
const MAX_CELLS = 16_000_000;
const EXTRA_COLUMN = '_extra';

/**
 * Columns from the records' top-level keys, in the order they first come: a column whose
 * values are all of one kind gets that type (string, boolean, int64, double — integers and
 * fractions together make a double), anything else (maps, arrays, mixed kinds, integers past
 * int64) is a string column of JSON text, strings as they are. Past the width allowed,
 * `extra`: the rest are kept in `_extra`. `dateKey` is the time column's, not inferred.
 */
function inferColumns(
  rows: readonly { record: LogRecord }[],
  dateKey: string | undefined,
): { columns: { name: string; type: ParquetType }[]; extra: boolean } {
  const kinds = new Map<string, number>();
  const width = Math.max(
    16,
    Math.min(MAX_INFERRED_COLUMNS, Math.floor(MAX_CELLS / Math.max(1, rows.length))),
  );
  let extra = false;
  for (const { record } of rows) {
    for (const key of Object.keys(record)) {
      if (key === dateKey) continue;
      const kind = kinds.get(key);
      if (kind === undefined && (kinds.size >= width || key === EXTRA_COLUMN)) extra = true;
      else kinds.set(key, (kind ?? 0) | kindOf(record[key]));
    }
  }
  return { columns: [...kinds].map(([name, kind]) => ({ name, type: typeOf(kind) })), extra };
}

/** The record's fields no column holds, as JSON (null when none). */
function extraOf(record: LogRecord, named: ReadonlySet<string>): Cell {
  let rest: LogRecord | undefined;
  for (const key of Object.keys(record)) {
    if (named.has(key)) continue;
    rest ??= {};
    rest[key] = record[key];
  }
  return rest === undefined ? null : toJson(rest);
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
      // Past int64 (a uint64 id), only text holds it.
      return value >= INT64_MIN && value <= INT64_MAX ? BIG : OTHER;
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
