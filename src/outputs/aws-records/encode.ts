import { isLogRecord, type LogRecord } from '../../core/entry.ts';
import type { EntryCursor } from '../../core/entry-cursor.ts';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { writeJson } from '../../core/msgpack-json.ts';
import { strftime } from '../../core/strftime.ts';
import { toJson } from '../../core/to-json.ts';
import { topLevelKeys, UNSURE } from '../elasticsearch/record-fields.ts';
import { encodeFailure } from '../format.ts';
import { NoLogKeyError, PlainWriter } from '../s3/plain.ts';
import { TimeField } from '../time-field.ts';

/**
 * One log record → the bytes of one stream record, for the Kinesis outputs (firehose,
 * kinesis_streams) alike, with Fluent Bit's options:
 *
 *   log_key set ─► that field alone (a string as its bytes, else JSON)       [+ "\n"]
 *   otherwise   ─► the record as JSON (+ time_key, keys with replace_dots)   [+ "\n"]
 *
 * JSON is written from the msgpack bytes (core/msgpack-json.ts). `replace_dots` rewrites every
 * key at every depth, which the byte writer does not do, so those records are decoded; so is
 * the rare record whose keys the bytes cannot vouch for. Both paths give the same bytes.
 */
export interface RecordFormat {
  /** Add the event time under this key, unless the record has it already (as Fluentd does). */
  timeKey: string | undefined;
  /** strftime of the time_key value, UTC. */
  timeKeyFormat: string;
  /** Send this field of the record raw instead of the record. */
  logKey: string | undefined;
  /** End every record in `\n`: Firehose concatenates records into S3 objects as they come. */
  appendNewline: boolean;
  /** Replace `.` in every key with this (Elasticsearch and Athena read a dotted key as a path). */
  replaceDots: string | undefined;
}

/**
 * Fluent Bit's time_key_format also takes `%3N` (milliseconds) and `%9N` (nanoseconds); the
 * strftime here spells them `%L` and `%N`, so configs copied from Fluent Bit work unchanged.
 */
export function fromFluentBitTimeFormat(format: string): string {
  return format.replaceAll('%3N', '%L').replaceAll('%9N', '%N');
}

/** Fluent Bit's default time_key_format. */
export const DEFAULT_TIME_KEY_FORMAT = '%Y-%m-%dT%H:%M:%S';

/** Appends the bytes of one record to a buffer; throws why it cannot, the same every try. */
export class RecordEncoder {
  private readonly f: RecordFormat;
  private readonly plain: PlainWriter | undefined;
  private readonly timeKeyBytes: Uint8Array[];
  /** time_key is one a JavaScript object treats specially: only the decoded path gets it right. */
  private readonly decodedOnly: boolean;
  private readonly timeField: TimeField | undefined;

  constructor(format: RecordFormat) {
    this.f = format;
    this.plain = format.logKey === undefined ? undefined : new PlainWriter(format.logKey);
    this.timeKeyBytes = format.timeKey === undefined ? [] : [Buffer.from(format.timeKey)];
    const key = format.timeKey;
    this.decodedOnly =
      format.replaceDots !== undefined ||
      (key !== undefined && (key in {} || key === '__proto_' || /^(0|[1-9]\d{0,9})$/.test(key)));
    this.timeField =
      key === undefined
        ? undefined
        : new TimeField(key, { strftime: fromFluentBitTimeFormat(format.timeKeyFormat) });
  }

  /** Appends the record under `cursor`; on a throw `out` is as it was. */
  write(out: JsonBuffer, tag: string, cursor: EntryCursor): void {
    const mark = out.n;
    try {
      if (this.plain) {
        this.plain.write(out, cursor, () => cursor.decode(tag).record);
        // PlainWriter ends each line in "\n": taken back when records go without.
        if (!this.f.appendNewline) out.n -= 1;
        return;
      }
      if (this.decodedOnly || !this.fast(out, cursor)) {
        out.n = mark;
        this.decoded(out, tag, cursor);
      }
    } catch (err) {
      out.n = mark;
      throw err;
    }
    if (this.f.appendNewline) out.byte(0x0a);
  }

  /** The record's JSON from its bytes, time_key appended; false when the bytes cannot tell. */
  private fast(out: JsonBuffer, c: EntryCursor): boolean {
    const src = c.payload;
    let addTime = false;
    if (this.timeField) {
      const found = topLevelKeys(src, c.recordStart, src.length, this.timeKeyBytes);
      if (found === UNSURE) return false;
      addTime = found === 0;
    }
    const at = out.n;
    c.recordEndsAt(writeJson(out, src, c.recordStart, src.length));
    if (addTime) {
      const empty = out.n - at === 2;
      out.n -= 1; // reopen the map: the time goes before its closing brace
      if (!empty) out.byte(0x2c); // ,
      this.timeField!.write(out, c.sec, c.nsec);
      out.byte(0x7d); // }
    }
    return true;
  }

  /** The definition the byte path matches: decode, rename keys, add the time, JSON. */
  private decoded(out: JsonBuffer, tag: string, c: EntryCursor): void {
    const entry = c.decode(tag);
    const doc: LogRecord =
      this.f.replaceDots === undefined ? { ...entry.record } : renameDots(entry.record, this.f.replaceDots);
    const key = this.f.timeKey;
    if (key !== undefined && !Object.hasOwn(doc, key)) {
      // defineProperty: a `__proto__` time_key is a key like any other, not the prototype.
      Object.defineProperty(doc, key, {
        value: strftime(fromFluentBitTimeFormat(this.f.timeKeyFormat), entry.time),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    out.utf8(toJson(doc));
  }
}

/** `.` in every key at every depth replaced; values other than maps and arrays as they are. */
function renameDots(record: LogRecord, by: string): LogRecord {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (!isLogRecord(value)) return value;
    // fromEntries defines own properties: a `__proto__` key stays a key.
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replaceAll('.', by), walk(v)]));
  };
  return walk(record) as LogRecord;
}

/** The reason a record no format could take is dead-lettered with. */
export function refusalReason(err: unknown): string {
  return err instanceof NoLogKeyError ? err.message : encodeFailure(err);
}
