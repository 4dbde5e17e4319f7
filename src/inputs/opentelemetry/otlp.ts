import { FIXED32, FIXED64, LEN, ProtoError, ProtoReader, ProtoWriter, VARINT } from './protobuf.ts';

/**
 * OTLP's log messages (opentelemetry/proto/collector/logs/v1 and logs/v1, common/v1), both
 * ways and in both encodings: the binary protobuf of `application/x-protobuf` and gRPC, and
 * the JSON of `application/json` (lowerCamelCase names, int64 as decimal strings, trace and
 * span ids as hex, bytes as base64). Only the fields logs use; unknown fields are skipped, as
 * protobuf readers must. No sockets here.
 */

/** An AnyValue as a record holds it; an empty AnyValue is null. */
export type AnyValue = string | number | bigint | boolean | Uint8Array | null | AnyValue[] | KvList;
export interface KvList {
  [key: string]: AnyValue;
}

export interface OtlpScope {
  name: string;
  version: string;
  attributes: KvList;
}

export interface OtlpLogRecord {
  /** Nanoseconds since the epoch; 0n when not set. */
  timeUnixNano: bigint;
  observedTimeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  /** undefined: no body at all. */
  body: AnyValue | undefined;
  attributes: KvList;
  flags: number;
  /** Empty when not set. */
  traceId: Uint8Array;
  spanId: Uint8Array;
  eventName: string;
}

export interface OtlpScopeLogs {
  scope: OtlpScope;
  logRecords: OtlpLogRecord[];
}

export interface OtlpResourceLogs {
  resource: KvList;
  scopeLogs: OtlpScopeLogs[];
}

/** A body that is not an OTLP logs request: the sender's fault (400). */
export class OtlpFormatError extends Error {
  override readonly name = 'OtlpFormatError';
}

export interface DecodeLimits {
  /** Deepest nesting of arrays and maps inside one AnyValue. */
  maxDepth: number;
  /** Most log records one request may hold; past it `tooMany` is thrown. */
  maxRecords: number;
  tooMany(count: number): Error;
  /**
   * Bytes the decoded values will hold, told as decoding goes (in steps, not per value): the
   * caller takes them from the in-flight budget or throws to stop.
   */
  charge(bytes: number): void;
}

/** What a decoded value holds on the heap, about (measured on V8 for small values). */
const VALUE_COST = 48;
const RECORD_COST = 400;
const GROUP_COST = 200;
const CHARGE_STEP = 64 * 1024;

/** Counts what decoding builds, and hands it to `charge` a step at a time. */
class Meter {
  records = 0;
  private pending = 0;
  private readonly limits: DecodeLimits;

  constructor(limits: DecodeLimits) {
    this.limits = limits;
  }

  value(bytes = 0): void {
    this.add(VALUE_COST + bytes);
  }

  /** A ResourceLogs or ScopeLogs: objects of their own, however empty on the wire. */
  group(): void {
    this.add(GROUP_COST);
  }

  record(): void {
    if (++this.records > this.limits.maxRecords) throw this.limits.tooMany(this.records);
    this.add(RECORD_COST);
  }

  depth(depth: number): void {
    if (depth > this.limits.maxDepth)
      throw new OtlpFormatError(`a value is nested deeper than max_nesting_depth (${this.limits.maxDepth})`);
  }

  flush(): void {
    if (this.pending > 0) this.limits.charge(this.pending);
    this.pending = 0;
  }

  private add(bytes: number): void {
    this.pending += bytes;
    if (this.pending >= CHARGE_STEP) this.flush();
  }
}

export function isKvList(value: AnyValue | undefined): value is KvList {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  );
}

/** Sets a key on a map built from the wire; `__proto__` stays a key, not the prototype. */
export function setKey(map: KvList, key: string, value: AnyValue): void {
  if (key === '__proto__')
    Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
  else map[key] = value;
}

// ───────────────────────────── protobuf in ─────────────────────────────

/** ExportLogsServiceRequest → resource logs. Throws OtlpFormatError, or what `limits` throw. */
export function decodeRequest(body: Uint8Array, limits: DecodeLimits): OtlpResourceLogs[] {
  const meter = new Meter(limits);
  const r = new ProtoReader(body);
  const out: OtlpResourceLogs[] = [];
  try {
    for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
      if (tag >>> 3 === 1) {
        r.expect(tag, LEN);
        meter.group();
        out.push(nested(r, () => resourceLogs(r, meter)));
      } else r.skip(tag & 7);
    }
  } catch (err) {
    if (err instanceof ProtoError) throw new OtlpFormatError(err.message);
    throw err;
  }
  meter.flush();
  return out;
}

/** Reads the length-delimited message at the reader with `read`, then moves past it. */
function nested<T>(r: ProtoReader, read: () => T): T {
  const [start, end] = r.span();
  const outer = r.end;
  r.pos = start;
  r.end = end;
  const value = read();
  r.end = outer;
  r.pos = end;
  return value;
}

function resourceLogs(r: ProtoReader, meter: Meter): OtlpResourceLogs {
  const out: OtlpResourceLogs = { resource: {}, scopeLogs: [] };
  for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
    const field = tag >>> 3;
    if (field === 1) {
      r.expect(tag, LEN);
      nested(r, () => {
        for (let t = r.tag(); t !== 0; t = r.tag()) {
          if (t >>> 3 === 1) {
            r.expect(t, LEN);
            keyValue(r, out.resource, meter, 1);
          } else r.skip(t & 7);
        }
      });
    } else if (field === 2) {
      r.expect(tag, LEN);
      meter.group();
      out.scopeLogs.push(nested(r, () => scopeLogs(r, meter)));
    } else r.skip(tag & 7);
  }
  return out;
}

function scopeLogs(r: ProtoReader, meter: Meter): OtlpScopeLogs {
  const out: OtlpScopeLogs = { scope: { name: '', version: '', attributes: {} }, logRecords: [] };
  for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
    const field = tag >>> 3;
    if (field === 1) {
      r.expect(tag, LEN);
      nested(r, () => scope(r, out.scope, meter));
    } else if (field === 2) {
      r.expect(tag, LEN);
      meter.record();
      out.logRecords.push(nested(r, () => logRecord(r, meter)));
    } else r.skip(tag & 7);
  }
  return out;
}

function scope(r: ProtoReader, into: OtlpScope, meter: Meter): void {
  for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
    const field = tag >>> 3;
    if (field === 1 || field === 2) {
      r.expect(tag, LEN);
      const text = r.string();
      if (field === 1) into.name = text;
      else into.version = text;
    } else if (field === 3) {
      r.expect(tag, LEN);
      keyValue(r, into.attributes, meter, 1);
    } else r.skip(tag & 7);
  }
}

function logRecord(r: ProtoReader, meter: Meter): OtlpLogRecord {
  const out = emptyLogRecord();
  for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
    switch (tag >>> 3) {
      case 1:
        r.expect(tag, FIXED64);
        out.timeUnixNano = r.fixed64();
        break;
      case 2:
        r.expect(tag, VARINT);
        out.severityNumber = r.int32();
        break;
      case 3:
        r.expect(tag, LEN);
        out.severityText = r.string();
        break;
      case 5:
        r.expect(tag, LEN);
        out.body = nested(r, () => anyValue(r, meter, 1));
        break;
      case 6:
        r.expect(tag, LEN);
        keyValue(r, out.attributes, meter, 1);
        break;
      case 8:
        r.expect(tag, FIXED32);
        out.flags = r.fixed32();
        break;
      case 9:
        r.expect(tag, LEN);
        out.traceId = r.bytes();
        break;
      case 10:
        r.expect(tag, LEN);
        out.spanId = r.bytes();
        break;
      case 11:
        r.expect(tag, FIXED64);
        out.observedTimeUnixNano = r.fixed64();
        break;
      case 12:
        r.expect(tag, LEN);
        out.eventName = r.string();
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return out;
}

export function emptyLogRecord(): OtlpLogRecord {
  return {
    timeUnixNano: 0n,
    observedTimeUnixNano: 0n,
    severityNumber: 0,
    severityText: '',
    body: undefined,
    attributes: {},
    flags: 0,
    traceId: EMPTY,
    spanId: EMPTY,
    eventName: '',
  };
}

const EMPTY = new Uint8Array(0);

/** A KeyValue message at the reader, put into `into`. */
function keyValue(r: ProtoReader, into: KvList, meter: Meter, depth: number): void {
  nested(r, () => {
    let key = '';
    let value: AnyValue = null;
    for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
      const field = tag >>> 3;
      if (field === 1) {
        r.expect(tag, LEN);
        key = r.string();
      } else if (field === 2) {
        r.expect(tag, LEN);
        value = nested(r, () => anyValue(r, meter, depth));
      } else r.skip(tag & 7);
    }
    meter.value(key.length);
    setKey(into, key, value);
  });
}

/** The AnyValue message whose fields the reader is at; the last of its oneof fields wins. */
function anyValue(r: ProtoReader, meter: Meter, depth: number): AnyValue {
  let value: AnyValue = null;
  for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
    switch (tag >>> 3) {
      case 1:
        r.expect(tag, LEN);
        value = r.string();
        meter.value(value.length);
        break;
      case 2:
        r.expect(tag, VARINT);
        value = r.int64() !== 0;
        meter.value();
        break;
      case 3:
        r.expect(tag, VARINT);
        value = r.int64();
        meter.value();
        break;
      case 4:
        r.expect(tag, FIXED64);
        value = r.double();
        meter.value();
        break;
      case 5: {
        r.expect(tag, LEN);
        meter.depth(depth + 1);
        const items: AnyValue[] = [];
        nested(r, () => {
          for (let t = r.tag(); t !== 0; t = r.tag()) {
            if (t >>> 3 === 1) {
              r.expect(t, LEN);
              items.push(nested(r, () => anyValue(r, meter, depth + 1)));
            } else r.skip(t & 7);
          }
        });
        meter.value();
        value = items;
        break;
      }
      case 6: {
        r.expect(tag, LEN);
        meter.depth(depth + 1);
        const map: KvList = {};
        nested(r, () => {
          for (let t = r.tag(); t !== 0; t = r.tag()) {
            if (t >>> 3 === 1) {
              r.expect(t, LEN);
              keyValue(r, map, meter, depth + 1);
            } else r.skip(t & 7);
          }
        });
        meter.value();
        value = map;
        break;
      }
      case 7:
        r.expect(tag, LEN);
        value = r.bytes();
        meter.value(value.length);
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return value;
}

// ───────────────────────────── JSON in ─────────────────────────────

/**
 * An OTLP/JSON ExportLogsServiceRequest, already parsed (with int64 numbers past 2^53 kept
 * as their source text, see parseOtlpJson) → resource logs. `values` is how many JSON values
 * the body holds, counted before it was parsed, charged here as the protobuf path does.
 */
export function decodeJsonRequest(parsed: unknown, limits: DecodeLimits): OtlpResourceLogs[] {
  const meter = new Meter(limits);
  const root = object(parsed, 'the body');
  const out: OtlpResourceLogs[] = [];
  for (const [i, rl] of array(root.resourceLogs, 'resourceLogs').entries()) {
    const at = `resourceLogs[${i}]`;
    meter.group();
    const o = object(rl, at);
    const resource: KvList = {};
    if (o.resource !== undefined && o.resource !== null)
      jsonAttributes(object(o.resource, `${at}.resource`).attributes, resource, meter, `${at}.resource`);
    const scopes: OtlpScopeLogs[] = [];
    for (const [j, sl] of array(o.scopeLogs, `${at}.scopeLogs`).entries()) {
      const sat = `${at}.scopeLogs[${j}]`;
      meter.group();
      const so = object(sl, sat);
      const scopeOut: OtlpScope = { name: '', version: '', attributes: {} };
      if (so.scope !== undefined && so.scope !== null) {
        const s = object(so.scope, `${sat}.scope`);
        scopeOut.name = str(s.name, `${sat}.scope.name`);
        scopeOut.version = str(s.version, `${sat}.scope.version`);
        jsonAttributes(s.attributes, scopeOut.attributes, meter, `${sat}.scope`);
      }
      const records: OtlpLogRecord[] = [];
      for (const [k, lr] of array(so.logRecords, `${sat}.logRecords`).entries()) {
        meter.record();
        records.push(jsonLogRecord(lr, meter, `${sat}.logRecords[${k}]`));
      }
      scopes.push({ scope: scopeOut, logRecords: records });
    }
    out.push({ resource, scopeLogs: scopes });
  }
  meter.flush();
  return out;
}

/**
 * JSON.parse keeping integers past 2^53 exact: as their source text, which the int64 readers
 * take. OTLP/JSON sends int64 as strings, but some senders write bare numbers.
 */
export function parseOtlpJson(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    typeof value === 'number' &&
    !Number.isSafeInteger(value) &&
    context?.source &&
    /^-?\d+$/.test(context.source)
      ? context.source
      : value,
  );
}

function jsonLogRecord(value: unknown, meter: Meter, at: string): OtlpLogRecord {
  const o = object(value, at);
  const out = emptyLogRecord();
  out.timeUnixNano = uint64(o.timeUnixNano, `${at}.timeUnixNano`);
  out.observedTimeUnixNano = uint64(o.observedTimeUnixNano, `${at}.observedTimeUnixNano`);
  const severity = o.severityNumber ?? 0;
  if (typeof severity !== 'number' || !Number.isInteger(severity))
    throw new OtlpFormatError(`${at}.severityNumber is not an integer`);
  out.severityNumber = severity;
  out.severityText = str(o.severityText, `${at}.severityText`);
  if (o.body !== undefined && o.body !== null) out.body = jsonAnyValue(o.body, meter, 1, `${at}.body`);
  jsonAttributes(o.attributes, out.attributes, meter, at);
  const flags = o.flags ?? 0;
  if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0)
    throw new OtlpFormatError(`${at}.flags is not an unsigned integer`);
  out.flags = flags;
  out.traceId = hexId(o.traceId, 16, `${at}.traceId`);
  out.spanId = hexId(o.spanId, 8, `${at}.spanId`);
  out.eventName = str(o.eventName, `${at}.eventName`);
  return out;
}

function jsonAttributes(value: unknown, into: KvList, meter: Meter, at: string): void {
  for (const [i, kv] of array(value, `${at}.attributes`).entries())
    jsonKeyValue(kv, into, meter, 1, `${at}.attributes[${i}]`);
}

function jsonKeyValue(value: unknown, into: KvList, meter: Meter, depth: number, at: string): void {
  const o = object(value, at);
  const key = str(o.key, `${at}.key`);
  meter.value(key.length);
  setKey(
    into,
    key,
    o.value === undefined || o.value === null ? null : jsonAnyValue(o.value, meter, depth, `${at}.value`),
  );
}

function jsonAnyValue(value: unknown, meter: Meter, depth: number, at: string): AnyValue {
  const o = object(value, at);
  if (typeof o.stringValue === 'string') {
    meter.value(o.stringValue.length);
    return o.stringValue;
  }
  meter.value();
  if (typeof o.boolValue === 'boolean') return o.boolValue;
  if (o.intValue !== undefined) return int64(o.intValue, `${at}.intValue`);
  if (o.doubleValue !== undefined) return double(o.doubleValue, `${at}.doubleValue`);
  if (o.bytesValue !== undefined) return Buffer.from(str(o.bytesValue, `${at}.bytesValue`), 'base64');
  if (o.arrayValue !== undefined) {
    meter.depth(depth + 1);
    const values = object(o.arrayValue, `${at}.arrayValue`).values;
    return array(values, `${at}.arrayValue.values`).map((v, i) =>
      jsonAnyValue(v, meter, depth + 1, `${at}.arrayValue.values[${i}]`),
    );
  }
  if (o.kvlistValue !== undefined) {
    meter.depth(depth + 1);
    const map: KvList = {};
    const values = object(o.kvlistValue, `${at}.kvlistValue`).values;
    for (const [i, kv] of array(values, `${at}.kvlistValue.values`).entries())
      jsonKeyValue(kv, map, meter, depth + 1, `${at}.kvlistValue.values[${i}]`);
    return map;
  }
  return null;
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new OtlpFormatError(`${at} is not an object`);
  return value as Record<string, unknown>;
}

function array(value: unknown, at: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new OtlpFormatError(`${at} is not an array`);
  return value;
}

function str(value: unknown, at: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new OtlpFormatError(`${at} is not a string`);
  return value;
}

function uint64(value: unknown, at: string): bigint {
  if (value === undefined || value === null) return 0n;
  if (
    (typeof value === 'string' && /^\d{1,20}$/.test(value)) ||
    (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0)
  ) {
    const n = BigInt(value);
    if (n < 2n ** 64n) return n;
  }
  throw new OtlpFormatError(`${at} is not an unsigned 64-bit integer`);
}

function int64(value: unknown, at: string): number | bigint {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) {
    const n = BigInt(value);
    if (n >= -(2n ** 63n) && n < 2n ** 63n) return Number.isSafeInteger(Number(n)) ? Number(n) : n;
  }
  throw new OtlpFormatError(`${at} is not a 64-bit integer`);
}

function double(value: unknown, at: string): number {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return Number.NaN;
  if (value === 'Infinity') return Number.POSITIVE_INFINITY;
  if (value === '-Infinity') return Number.NEGATIVE_INFINITY;
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
    return Number(value);
  throw new OtlpFormatError(`${at} is not a number`);
}

/** OTLP/JSON writes ids as hex (not base64, unlike other bytes fields); empty means unset. */
function hexId(value: unknown, bytes: number, at: string): Uint8Array {
  const text = str(value, at);
  if (text === '') return EMPTY;
  if (text.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(text))
    throw new OtlpFormatError(`${at} is not ${bytes * 2} hex digits`);
  return Buffer.from(text, 'hex');
}

// ───────────────────────────── protobuf out ─────────────────────────────

/** A LogRecord message's content. */
export function writeLogRecord(w: ProtoWriter, rec: OtlpLogRecord): void {
  if (rec.timeUnixNano !== 0n) {
    w.tag(1, FIXED64);
    w.fixed64(rec.timeUnixNano);
  }
  if (rec.severityNumber !== 0) {
    w.tag(2, VARINT);
    w.int64(rec.severityNumber);
  }
  if (rec.severityText !== '') w.string(3, rec.severityText);
  if (rec.body !== undefined) {
    const start = w.begin(5);
    writeAnyValue(w, rec.body);
    w.end(start);
  }
  writeAttributes(w, 6, rec.attributes);
  if (rec.flags !== 0) {
    w.tag(8, FIXED32);
    w.fixed32(rec.flags);
  }
  if (rec.traceId.length > 0) w.bytes(9, rec.traceId);
  if (rec.spanId.length > 0) w.bytes(10, rec.spanId);
  if (rec.observedTimeUnixNano !== 0n) {
    w.tag(11, FIXED64);
    w.fixed64(rec.observedTimeUnixNano);
  }
  if (rec.eventName !== '') w.string(12, rec.eventName);
}

/** A Resource message's content. */
export function writeResource(w: ProtoWriter, attributes: KvList): void {
  writeAttributes(w, 1, attributes);
}

/** An InstrumentationScope message's content. */
export function writeScope(w: ProtoWriter, scope: OtlpScope): void {
  if (scope.name !== '') w.string(1, scope.name);
  if (scope.version !== '') w.string(2, scope.version);
  writeAttributes(w, 3, scope.attributes);
}

function writeAttributes(w: ProtoWriter, field: number, attributes: KvList): void {
  for (const key of Object.keys(attributes)) {
    const start = w.begin(field);
    w.string(1, key);
    const value = w.begin(2);
    writeAnyValue(w, attributes[key]!);
    w.end(value);
    w.end(start);
  }
}

/** An AnyValue's content: what a record holds, back in OTLP's types. */
export function writeAnyValue(w: ProtoWriter, value: AnyValue): void {
  if (value === null || value === undefined) return;
  if (typeof value === 'string') w.string(1, value);
  else if (typeof value === 'boolean') {
    w.tag(2, VARINT);
    w.varint(value ? 1 : 0);
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) {
      w.tag(3, VARINT);
      w.int64(value);
    } else {
      w.tag(4, FIXED64);
      w.double(value);
    }
  } else if (typeof value === 'bigint') {
    w.tag(3, VARINT);
    w.int64(value);
  } else if (value instanceof Uint8Array) w.bytes(7, value);
  else if (Array.isArray(value)) {
    const list = w.begin(5);
    for (const item of value) {
      const start = w.begin(1);
      writeAnyValue(w, item);
      w.end(start);
    }
    w.end(list);
  } else {
    const list = w.begin(6);
    writeAttributes(w, 1, value);
    w.end(list);
  }
}

// ───────────────────────────── JSON out ─────────────────────────────

/** OTLP/JSON of an ExportLogsServiceRequest. */
export function encodeJsonRequest(resourceLogs: readonly OtlpResourceLogs[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      resourceLogs: resourceLogs.map((rl) => ({
        resource: { attributes: jsonKvs(rl.resource) },
        scopeLogs: rl.scopeLogs.map((sl) => ({
          scope: { name: sl.scope.name, version: sl.scope.version, attributes: jsonKvs(sl.scope.attributes) },
          logRecords: sl.logRecords.map(jsonRecordOut),
        })),
      })),
    }),
  );
}

function jsonRecordOut(rec: OtlpLogRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (rec.timeUnixNano !== 0n) out.timeUnixNano = String(rec.timeUnixNano);
  if (rec.observedTimeUnixNano !== 0n) out.observedTimeUnixNano = String(rec.observedTimeUnixNano);
  if (rec.severityNumber !== 0) out.severityNumber = rec.severityNumber;
  if (rec.severityText !== '') out.severityText = rec.severityText;
  if (rec.body !== undefined) out.body = jsonValueOut(rec.body);
  out.attributes = jsonKvs(rec.attributes);
  if (rec.flags !== 0) out.flags = rec.flags;
  if (rec.traceId.length > 0) out.traceId = Buffer.from(rec.traceId).toString('hex');
  if (rec.spanId.length > 0) out.spanId = Buffer.from(rec.spanId).toString('hex');
  if (rec.eventName !== '') out.eventName = rec.eventName;
  return out;
}

function jsonKvs(map: KvList): { key: string; value: Record<string, unknown> }[] {
  return Object.keys(map).map((key) => ({ key, value: jsonValueOut(map[key]!) }));
}

function jsonValueOut(value: AnyValue): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return { intValue: String(value) };
    return { doubleValue: Number.isFinite(value) ? value : String(value) };
  }
  if (typeof value === 'bigint') return { intValue: String(value) };
  if (value instanceof Uint8Array) return { bytesValue: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return { arrayValue: { values: value.map(jsonValueOut) } };
  return { kvlistValue: { values: jsonKvs(value) } };
}

// ───────────────────────────── answers ─────────────────────────────

export interface PartialSuccess {
  rejected: number;
  message: string;
}

/** ExportLogsServiceResponse: empty when all was taken. */
export function encodeResponse(partial: PartialSuccess, json: boolean): Buffer {
  const none = partial.rejected === 0 && partial.message === '';
  if (json) {
    return Buffer.from(
      none
        ? '{}'
        : JSON.stringify({
            partialSuccess: { rejectedLogRecords: String(partial.rejected), errorMessage: partial.message },
          }),
    );
  }
  if (none) return Buffer.alloc(0);
  const w = new ProtoWriter(64 + partial.message.length * 3);
  const start = w.begin(1);
  if (partial.rejected > 0) {
    w.tag(1, VARINT);
    w.int64(partial.rejected);
  }
  if (partial.message !== '') w.string(2, partial.message);
  w.end(start);
  return w.finish();
}

/** The partial_success of an ExportLogsServiceResponse; a body that is not one counts as none. */
export function decodeResponse(body: Uint8Array, json: boolean): PartialSuccess {
  const none = { rejected: 0, message: '' };
  try {
    if (json) {
      const p = (
        parseOtlpJson(Buffer.from(body).toString('utf8') || '{}') as {
          partialSuccess?: Record<string, unknown>;
        }
      ).partialSuccess;
      if (typeof p !== 'object' || p === null) return none;
      const rejected = Number(p.rejectedLogRecords ?? 0);
      return {
        rejected: Number.isFinite(rejected) ? rejected : 0,
        message: typeof p.errorMessage === 'string' ? p.errorMessage : '',
      };
    }
    const r = new ProtoReader(body);
    const out = { ...none };
    for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
      if (tag >>> 3 !== 1 || (tag & 7) !== LEN) {
        r.skip(tag & 7);
        continue;
      }
      nested(r, () => {
        for (let t = r.tag(); t !== 0; t = r.tag()) {
          if (t >>> 3 === 1 && (t & 7) === VARINT) out.rejected = Number(r.int64());
          else if (t >>> 3 === 2 && (t & 7) === LEN) out.message = r.string();
          else r.skip(t & 7);
        }
      });
    }
    return out;
  } catch {
    return none;
  }
}

/** google.rpc.Status, the body of an OTLP/HTTP error answer. */
export function encodeStatus(code: number, message: string, json: boolean): Buffer {
  if (json) return Buffer.from(JSON.stringify({ code, message }));
  const w = new ProtoWriter(16 + message.length * 3);
  w.tag(1, VARINT);
  w.varint(code);
  w.string(2, message);
  return w.finish();
}

/**
 * google.rpc.Status with a google.rpc.RetryInfo detail: what a gRPC server sends in
 * `grpc-status-details-bin` so an OTLP client waits as long as asked (HTTP's Retry-After).
 */
export function encodeRetryStatus(code: number, message: string, retryAfterSeconds: number): Buffer {
  const w = new ProtoWriter(64 + message.length * 3);
  w.tag(1, VARINT);
  w.varint(code);
  w.string(2, message);
  const any = w.begin(3);
  w.string(1, 'type.googleapis.com/google.rpc.RetryInfo');
  const info = w.begin(2);
  const delay = w.begin(1);
  if (retryAfterSeconds > 0) {
    w.tag(1, VARINT);
    w.varint(retryAfterSeconds);
  }
  w.end(delay);
  w.end(info);
  w.end(any);
  return w.finish();
}

/** The message of a google.rpc.Status body, if the body is one. */
export function decodeStatusMessage(body: Uint8Array, json: boolean): string | undefined {
  try {
    if (json) {
      const m = (JSON.parse(Buffer.from(body).toString('utf8')) as { message?: unknown }).message;
      return typeof m === 'string' ? m : undefined;
    }
    const r = new ProtoReader(body);
    let message: string | undefined;
    for (let tag = r.tag(); tag !== 0; tag = r.tag()) {
      if (tag >>> 3 === 2 && (tag & 7) === LEN) message = r.string();
      else r.skip(tag & 7);
    }
    return message;
  } catch {
    return undefined;
  }
}
