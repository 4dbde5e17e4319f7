import type { LogRecord } from '../../core/entry.ts';
import type { EntryCursor } from '../../core/entry-cursor.ts';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { valueAt } from '../../core/msgpack-fields.ts';
import { writeJson } from '../../core/msgpack-json.ts';
import { ARRAY, FLOAT, INT, newHeader, readHeader, STR } from '../../protocol/forward/msgpack-scan.ts';
import { ABSENT, bytePathUsable, findPath, UNSURE } from '../elasticsearch/record-fields.ts';
import type { MetricSpec } from './config.ts';

/**
 * `log_format: json/emf`: each record as a CloudWatch Embedded Metric Format document — the
 * record's own JSON with an `_aws` member telling CloudWatch which of its top-level fields are
 * metrics (`metrics`, with units), in which namespace and under which dimension sets:
 *
 *   {"count":3,"level":"info","_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[
 *     {"Namespace":"app","Dimensions":[["level"]],"Metrics":[{"Name":"count","Unit":"Count"}]}]}}
 *
 * The spec asks every referenced field to be on the record (numbers for metrics, strings for
 * dimensions): a metric the record lacks is left out of the directive, a dimension set whose
 * fields it lacks too; a record with no metric left (or no dimension set left when sets are
 * configured) is sent as plain JSON — no metric rather than a wrong one. A record that has an
 * `_aws` member already was written in EMF by its application and is sent as it is.
 */

export interface EmfSettings {
  namespace: string;
  /** Dimension sets of top-level keys; empty: the metrics have no dimensions. */
  dimensions: readonly (readonly string[])[];
  metrics: readonly MetricSpec[];
}

/** A top-level field: its name, and its UTF-8 bytes when the byte reader can find it. */
interface Field {
  name: string;
  bytes: Uint8Array[] | undefined;
}

const field = (name: string): Field => ({
  name,
  bytes: bytePathUsable([name]) ? [Buffer.from(name, 'utf8')] : undefined,
});

const AWS = field('_aws');
const TIMESTAMP = Buffer.from('"_aws":{"Timestamp":');
const METRICS = Buffer.from('],"Metrics":[');
const END = Buffer.from(']}]}}');
const EMPTY_SET = Buffer.from('[]');

const h = newHeader();

/** EMF's limit on the values of one metric given as an array. */
const MAX_VALUES = 100;

export class EmfWriter {
  private readonly metrics: { field: Field; json: Buffer }[];
  private readonly sets: { fields: Field[]; json: Buffer }[];
  private readonly directive: Buffer;
  // The record's fields as the spec reads them, for one write.
  private src: Uint8Array = new Uint8Array(0);
  private start = 0;
  private decoded: LogRecord | undefined;
  private decode: () => LogRecord = () => ({});

  constructor(s: EmfSettings) {
    this.metrics = s.metrics.map((m) => ({
      field: field(m.name),
      json: Buffer.from(
        JSON.stringify({
          Name: m.name,
          ...(m.unit === undefined ? {} : { Unit: m.unit }),
          ...(m.storage_resolution === undefined ? {} : { StorageResolution: m.storage_resolution }),
        }),
      ),
    }));
    this.sets = s.dimensions.map((keys) => ({
      fields: keys.map(field),
      json: Buffer.from(JSON.stringify(keys)),
    }));
    this.directive = Buffer.from(
      `,"CloudWatchMetrics":[{"Namespace":${JSON.stringify(s.namespace)},"Dimensions":[`,
    );
  }

  /** Appends the document of the record under `cursor`; on a throw `out` is as it was. */
  write(out: JsonBuffer, tag: string, cursor: EntryCursor): void {
    const src = cursor.payload;
    const mark = out.n;
    cursor.recordEndsAt(writeJson(out, src, cursor.recordStart, src.length));
    this.src = src;
    this.start = cursor.recordStart;
    this.decoded = undefined;
    this.decode = () => cursor.decode(tag).record;
    try {
      const own = this.locate(AWS);
      if (own >= 0 || (own === UNSURE && this.decodedField(AWS) !== undefined)) return;
      const metrics = this.metrics.filter((m) => this.isMetric(m.field));
      if (metrics.length === 0) return;
      const sets = this.sets.filter((set) => set.fields.every((f) => this.isDimension(f)));
      if (this.sets.length > 0 && sets.length === 0) return;
      // Reopen the record's map: `_aws` goes before its closing brace.
      out.n -= 1;
      if (out.buf[out.n - 1] !== 0x7b) out.byte(0x2c); // `,` unless the map is empty
      out.bytes(TIMESTAMP);
      out.uint(cursor.sec * 1000 + Math.floor(cursor.nsec / 1e6));
      out.bytes(this.directive);
      if (sets.length === 0) out.bytes(EMPTY_SET);
      for (const [i, set] of sets.entries()) {
        if (i > 0) out.byte(0x2c);
        out.bytes(set.json);
      }
      out.bytes(METRICS);
      for (const [i, m] of metrics.entries()) {
        if (i > 0) out.byte(0x2c);
        out.bytes(m.json);
      }
      out.bytes(END);
    } catch (err) {
      out.n = mark;
      throw err;
    } finally {
      this.decoded = undefined;
    }
  }

  /** Whether the record's field can be this metric's target: read from the bytes for the usual scalars. */
  private isMetric(f: Field): boolean {
    const at = this.locate(f);
    if (at === UNSURE) return isMetricValue(this.decodedField(f));
    if (at === ABSENT || readHeader(this.src, at, this.src.length, h) < 0) return false;
    if (h.type === INT) return true;
    if (h.type === FLOAT) return Number.isFinite(h.value);
    return h.type === ARRAY && isMetricValue(valueAt(this.src, at, this.src.length));
  }

  /** Whether the record's field can be a dimension's target; ASCII strings of up to 1024 bytes are read in place. */
  private isDimension(f: Field): boolean {
    const at = this.locate(f);
    if (at === UNSURE) return isDimensionValue(this.decodedField(f));
    if (at === ABSENT) return false;
    const body = readHeader(this.src, at, this.src.length, h);
    if (body < 0 || h.type !== STR) return false;
    if (h.length > 1024) return isDimensionValue(valueAt(this.src, at, this.src.length));
    for (let i = body; i < body + h.length; i++) {
      const b = this.src[i]!;
      // Beyond ASCII, whitespace is the decoded string's to tell (U+00A0 and the like).
      if (b >= 0x80) return isDimensionValue(valueAt(this.src, at, this.src.length));
      if (b !== 0x20 && (b < 0x09 || b > 0x0d)) return true;
    }
    return false;
  }

  /** Where the field's value starts in the record being written, ABSENT, or UNSURE (decode it). */
  private locate(f: Field): number {
    return f.bytes === undefined ? UNSURE : findPath(this.src, this.start, this.src.length, f.bytes);
  }

  private decodedField(f: Field): unknown {
    this.decoded ??= this.decode();
    return Object.hasOwn(this.decoded, f.name) ? this.decoded[f.name] : undefined;
  }
}

/** A metric target: a number, or an array of at most 100 numbers (JSON writes NaN as null: refused). */
function isMetricValue(v: unknown): boolean {
  if (typeof v === 'bigint') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.length <= MAX_VALUES &&
    v.every((x) => typeof x === 'bigint' || (typeof x === 'number' && Number.isFinite(x)))
  );
}

/** A dimension target: a string of 1 to 1024 characters, not all blank (CloudWatch's rule for a value). */
function isDimensionValue(v: unknown): boolean {
  return typeof v === 'string' && v.length <= 1024 && /\S/.test(v);
}
