import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { toEntry } from '../core/batch.ts';
import { type Entry, isLogRecord, type LogRecord } from '../core/entry.ts';
import { InputError } from '../core/errors.ts';
import { EventTime } from '../core/event-time.ts';
import { type InflightLease, inflightFull } from '../core/inflight.ts';
import { parseJson } from '../core/json-parse.ts';
import { unpackStream } from '../core/msgpack.ts';
import { parseTime } from '../core/parse-time.ts';
import { FrameError } from '../protocol/forward/errors.ts';
import {
  ARRAY,
  BIN,
  EXT,
  MAP,
  newHeader,
  readHeader,
  STR,
  skipValue,
} from '../protocol/forward/msgpack-scan.ts';

/**
 * Decoding of HTTP input bodies, as Fluentd's in_http and Fluent Bit's out_http send them:
 * content-type and content-encoding in, entries out. No sockets here.
 */

/** A body the sender must fix (or resend); `status` is the HTTP answer (400, 408, 413 or 415). */
export class BodyError extends InputError {
  readonly status: 400 | 408 | 413 | 415;

  constructor(message: string, status: 400 | 408 | 413 | 415 = 400) {
    super(message);
    this.status = status;
  }
}

export interface BodyRequest {
  /** The raw body, still compressed. */
  body: Buffer;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  /** `?time=` as sent; a form field `time` overrides it, as in Fluentd. */
  time: string | undefined;
}

export interface DecodeOptions {
  timeKey: string;
  keepTimeKey: boolean;
  /** Largest body accepted after decompression, in bytes. */
  maxDecompressedSize: number;
  /** The request's share of the in-flight budget: decompressed bytes are taken from it as they come. */
  lease?: InflightLease;
  /** Deepest nesting of arrays and maps (objects) in a body; deeper is a 400. Default 100. */
  maxNestingDepth?: number;
  /** Most records one request may carry; more is a 413. Default 1,000,000. */
  maxRecords?: number;
}

export const DEFAULT_MAX_RECORDS = 1_000_000;

/** Forward's default max_nesting_depth. */
export const DEFAULT_MAX_NESTING_DEPTH = 100;

/** Fluent Bit's out_http puts the record time here (`json_date_key`) unless told otherwise. */
const FLUENT_BIT_DATE_KEY = 'date';

export async function decodeBody(request: BodyRequest, options: DecodeOptions): Promise<Entry[]> {
  if (request.body.length === 0) return [];
  const body = await decompress(
    request.body,
    request.contentEncoding,
    options.maxDecompressedSize,
    options.lease,
  );
  const type = mediaType(request.contentType);
  if (type === '' || type === 'application/x-www-form-urlencoded') {
    return decodeForm(body, request.time, options);
  }
  const format = formatOf(type);
  if (!format) {
    throw new BodyError(
      `unsupported content-type ${type} (use application/json, application/x-ndjson, application/msgpack or application/x-www-form-urlencoded)`,
      415,
    );
  }
  return decodeFormat(format, body, timeParam(request.time), options);
}

type Format = 'json' | 'msgpack';

/** `application/json; charset=utf-8` → `application/json`; absent → ''. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function formatOf(type: string): Format | undefined {
  // NDJSON is a special case of the JSON value stream, so both take the same splitter.
  if (
    type === 'application/json' ||
    type === 'application/x-ndjson' ||
    type === 'application/ndjson' ||
    type === 'application/jsonl' ||
    type === 'application/json-seq' ||
    type.endsWith('+json')
  ) {
    return 'json';
  }
  if (
    type === 'application/msgpack' ||
    type === 'application/x-msgpack' ||
    type === 'application/vnd.msgpack'
  ) {
    return 'msgpack';
  }
  return undefined;
}

function decodeFormat(
  format: Format,
  body: Buffer,
  time: EventTime | undefined,
  options: DecodeOptions,
): Entry[] {
  const build = new EntryBuilder(time, options);
  const maxDepth = options.maxNestingDepth ?? DEFAULT_MAX_NESTING_DEPTH;
  // What decoding will hold is counted from the bytes first, and taken from the in-flight
  // budget before any object exists: a small body of millions of tiny records decodes into
  // gigabytes of objects.
  const shape = format === 'json' ? jsonShape(body, maxDepth) : msgpackShape(body, maxDepth);
  holdDecoded(shape, body.length, options);
  if (format === 'json') {
    for (const { value, offset } of splitJson(body, maxDepth)) build.addJson(value, offset);
  } else {
    unpackMsgpack(body).forEach((item, index) => {
      build.addMsgpack(item, index);
    });
  }
  return build.entries;
}

/** Fluentd's form shape: `json=…`, `ndjson=…` or `msgpack=…`, plus an optional `time=…`. */
function decodeForm(body: Buffer, queryTime: string | undefined, options: DecodeOptions): Entry[] {
  const fields = parseForm(body);
  const time = timeParam(fields.get('time')?.toString('utf8') ?? queryTime);
  const json = fields.get('json') ?? fields.get('ndjson');
  if (json) return decodeFormat('json', json, time, options);
  const msgpack = fields.get('msgpack');
  if (msgpack) return decodeFormat('msgpack', msgpack, time, options);
  throw new BodyError("missing 'json', 'ndjson' or 'msgpack' parameter");
}

/**
 * `a=1&b=2` with `+` and `%XX` decoded to bytes, not text: a `msgpack=` field carries
 * binary that a UTF-8 decode would mangle.
 */
export function parseForm(body: Buffer): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  let start = 0;
  while (start <= body.length) {
    let end = body.indexOf(0x26 /* & */, start);
    if (end < 0) end = body.length;
    const eq = body.indexOf(0x3d /* = */, start);
    const split = eq >= 0 && eq < end ? eq : end;
    const name = percentDecode(body.subarray(start, split)).toString('utf8');
    if (name && !fields.has(name))
      fields.set(name, percentDecode(body.subarray(Math.min(split + 1, end), end)));
    start = end + 1;
  }
  return fields;
}

function percentDecode(bytes: Buffer): Buffer {
  if (!bytes.includes(0x25 /* % */) && !bytes.includes(0x2b /* + */)) return bytes;
  const out = Buffer.allocUnsafe(bytes.length);
  let n = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    const hi = hexDigit(bytes[i + 1]);
    const lo = hexDigit(bytes[i + 2]);
    if (c === 0x25 && hi >= 0 && lo >= 0) {
      out[n++] = hi * 16 + lo;
      i += 2;
    } else {
      out[n++] = c === 0x2b ? 0x20 : c;
    }
  }
  return out.subarray(0, n);
}

function hexDigit(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

// ---------------------------------------------------------------------------------------------
// Content-Encoding

// Fewer, larger pieces than zlib's 16 KiB default: each one is a budget take.
const CHUNK = 64 * 1024;

const DECODERS: Record<string, (data: Buffer) => Transform> = {
  gzip: () => zlib.createGunzip({ chunkSize: CHUNK }),
  'x-gzip': () => zlib.createGunzip({ chunkSize: CHUNK }),
  // HTTP's "deflate" is zlib-wrapped, but enough clients send raw deflate that we take both.
  deflate: (data) =>
    looksLikeZlib(data)
      ? zlib.createInflate({ chunkSize: CHUNK })
      : zlib.createInflateRaw({ chunkSize: CHUNK }),
  zstd: () => zlib.createZstdDecompress({ chunkSize: CHUNK }),
  br: () => zlib.createBrotliDecompress({ chunkSize: CHUNK }),
};

/**
 * Undoes Content-Encoding (several codings are undone last first). Decoding stops as soon as
 * the output passes `max`, or, with a lease, as soon as a piece of it does not fit in the
 * in-flight budget: a small bomb can eat neither this request's limit nor the process's.
 */
export async function decompress(
  body: Buffer,
  contentEncoding: string | undefined,
  max: number,
  lease?: InflightLease,
): Promise<Buffer> {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  let out = body;
  for (const coding of codings.reverse()) {
    const decoder = DECODERS[coding];
    if (!decoder)
      throw new BodyError(`unsupported content-encoding ${coding} (use gzip, deflate or zstd)`, 415);
    out = await inflate(out, decoder(out), coding, max, lease);
  }
  return out;
}

function inflate(
  data: Buffer,
  stream: Transform,
  coding: string,
  max: number,
  lease: InflightLease | undefined,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (err: Error) => {
      stream.destroy();
      reject(err);
    };
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max)
        fail(new BodyError(`decompressed body exceeds max_decompressed_size (${max} bytes)`, 413));
      else if (lease && !lease.tryTake(chunk.length)) fail(inflightFull(lease.limit));
      else chunks.push(chunk);
    });
    stream.on('error', (err) => fail(new BodyError(`invalid ${coding} body: ${oneLine(err)}`)));
    stream.on('end', () => resolve(Buffer.concat(chunks, size)));
    stream.end(data);
  });
}

function looksLikeZlib(data: Buffer): boolean {
  // RFC 1950: compression method 8, and the two header bytes are a multiple of 31.
  return data.length >= 2 && (data[0]! & 0x0f) === 8 && ((data[0]! << 8) | data[1]!) % 31 === 0;
}

// ---------------------------------------------------------------------------------------------
// JSON

export interface JsonValue {
  value: unknown;
  /** Byte offset of the value in the body, for error messages. */
  offset: number;
}

/**
 * Every top-level object or array of a body: one value, or values back to back or one per
 * line (Fluent Bit's `json_stream` and `json_lines`, NDJSON). Only `{`/`[` values are split
 * out, scanning bytes: the structural characters are ASCII and never occur inside a UTF-8
 * multi-byte sequence, so byte offsets stay exact.
 */
export function parseJsonValues(body: Buffer, maxDepth = DEFAULT_MAX_NESTING_DEPTH): JsonValue[] {
  jsonShape(body, maxDepth);
  return splitJson(body, maxDepth);
}

/** parseJsonValues for a body whose depth jsonShape has checked. */
function splitJson(body: Buffer, maxDepth: number): JsonValue[] {
  const values: JsonValue[] = [];
  let i = skipWhitespace(body, 0);
  // Depth was checked before any JSON.parse (jsonShape): a value parsed deeper would make
  // every encoder after it (msgpack, the outputs' JSON) overflow the stack.
  if (body[i] === 0x5b) {
    // One big array is what curl users and Fluent Bit's `format json` send: parse it without
    // the scan; on failure the scan below finds the exact error (or a second value).
    try {
      return [{ value: parseJson(body.toString('utf8')), offset: i }];
    } catch {}
  }
  for (;;) {
    i = skipWhitespace(body, i);
    if (i >= body.length) return values;
    const c = body[i];
    if (c !== 0x7b && c !== 0x5b) throw new BodyError(`expected a JSON object or array at byte ${i}`);
    const end = valueEnd(body, i, maxDepth);
    values.push({ value: parseSlice(body, i, end), offset: i });
    i = end;
  }
}

/** What a body will decode into, counted from its bytes (upper bounds). */
export interface BodyShape {
  /** Values: objects, arrays, strings, numbers… each a heap object or a slot once parsed. */
  values: number;
  /** Records: top-level objects, and the elements of top-level arrays. */
  records: number;
}

/**
 * One loop over the bytes, strings skipped with indexOf: the depth check (a 400 past
 * `maxDepth`; no recursion, so no depth can overflow the stack here) and the counts of
 * BodyShape. Malformed JSON is left to JSON.parse and the splitter, which name the byte.
 */
export function jsonShape(body: Buffer, maxDepth: number): BodyShape {
  let depth = 0;
  let values = 0;
  let records = 0;
  /** Whether the value open at depth 1 is an array (its elements are records). */
  let topArray = false;
  let topEmpty = true;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === 0x22) {
      i = stringEndOrLast(body, i);
      if (depth === 1 && topArray) topEmpty = false;
    } else if (c === 0x7b || c === 0x5b) {
      values++;
      if (depth === 0) {
        topArray = c === 0x5b;
        topEmpty = true;
        if (!topArray) records++;
      } else if (depth === 1 && topArray) topEmpty = false;
      if (++depth > maxDepth) throw tooDeep(maxDepth, i);
    } else if (c === 0x7d || c === 0x5d) {
      if (depth === 1 && topArray && !topEmpty) records++;
      if (depth > 0) depth--;
    } else if (c === 0x2c || c === 0x3a) {
      values++;
      if (depth === 1 && topArray && c === 0x2c) records++;
    } else if (depth === 1 && topArray && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) {
      topEmpty = false;
    }
  }
  return { values, records };
}

/** The same counts for a msgpack body, from its headers; also forward's checks (0xC1, ext types, timestamps a Date cannot hold). */
export function msgpackShape(body: Buffer, maxDepth: number): BodyShape {
  const h = newHeader();
  let values = 0;
  let records = 0;
  try {
    for (let pos = 0; pos < body.length; ) {
      // A map is one record, so is a [time, record] entry (Fluent Bit); an array of maps is many.
      const inner = readHeader(body, pos, body.length, h);
      let count = 1;
      if (h.type === ARRAY) {
        count = h.length;
        if (count > 0 && readHeader(body, inner, body.length, h) >= 0 && h.type !== MAP) count = 1;
      }
      records += count;
      const end = skipValue(body, pos, body.length, maxDepth);
      for (let p = pos; p < end; ) {
        p = readHeader(body, p, end, h);
        values++;
        if (h.type === STR || h.type === BIN || h.type === EXT) p += h.length;
      }
      pos = end;
    }
  } catch (err) {
    if (err instanceof FrameError) throw new BodyError(`invalid msgpack: ${err.message}`);
    throw err;
  }
  return { values, records };
}

/** Bytes a parsed value holds, a record's entry holds, on top of the body's own bytes (measured on V8). */
const VALUE_COST = 16;
const RECORD_COST = 100;

/**
 * Takes what decoding the body will hold from the request's in-flight lease, or refuses it:
 * 413 past max_records or when it could never fit in the budget, 503 (retry) when the budget
 * is only full for now.
 */
function holdDecoded(shape: BodyShape, bodyBytes: number, options: DecodeOptions): void {
  const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
  if (shape.records > maxRecords)
    throw new BodyError(`${shape.records} records in one request; max_records is ${maxRecords}`, 413);
  const lease = options.lease;
  if (!lease) return;
  const bytes = shape.values * VALUE_COST + shape.records * RECORD_COST + bodyBytes;
  // With what the request holds already (its body, inflated): past the limit it could only
  // ever get in alone, so it is told why rather than to retry.
  if (lease.held + bytes > lease.limit) {
    throw new BodyError(
      `decoding this body would hold about ${mib(lease.held + bytes)} MiB with the body itself, more than service.max_inflight_bytes (${mib(lease.limit)} MiB): send smaller requests`,
      413,
    );
  }
  if (!lease.tryTake(bytes)) throw inflightFull(lease.limit);
}

function mib(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

function tooDeep(maxDepth: number, at: number): BodyError {
  return new BodyError(`JSON nested deeper than max_nesting_depth (${maxDepth}) at byte ${at}`);
}

/** stringEnd, or the last byte for an unterminated string (the parse reports that one). */
function stringEndOrLast(body: Buffer, open: number): number {
  let from = open + 1;
  for (;;) {
    const quote = body.indexOf(0x22, from);
    if (quote < 0) return body.length - 1;
    let backslashes = 0;
    while (body[quote - 1 - backslashes] === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

function skipWhitespace(body: Buffer, from: number): number {
  let i = from;
  while (i < body.length) {
    const c = body[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09 && c !== 0x1e /* json-seq RS */) break;
    i++;
  }
  return i;
}

/**
 * Index just past the bracket that closes the value opened at `start`. A mismatched closer
 * ends the value early, so that JSON.parse reports the exact byte.
 */
function valueEnd(body: Buffer, start: number, maxDepth: number): number {
  const open: number[] = [];
  for (let i = start; i < body.length; i++) {
    const c = body[i];
    if (c === 0x22) i = stringEnd(body, i);
    else if (c === 0x7b || c === 0x5b) {
      if (open.length >= maxDepth) throw tooDeep(maxDepth, i);
      open.push(c + 2);
    } else if (c === 0x7d || c === 0x5d) {
      if (open.pop() !== c || open.length === 0) return i + 1;
    }
  }
  throw new BodyError(`invalid JSON at byte ${body.length}: unexpected end of body`);
}

/** Index of the quote closing the string opened at `open`; a quote after an odd run of backslashes is escaped. */
function stringEnd(body: Buffer, open: number): number {
  let from = open + 1;
  for (;;) {
    const quote = body.indexOf(0x22, from);
    if (quote < 0)
      throw new BodyError(`invalid JSON at byte ${body.length}: unterminated string from byte ${open}`);
    let backslashes = 0;
    while (body[quote - 1 - backslashes] === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

function parseSlice(body: Buffer, start: number, end: number): unknown {
  const text = body.toString('utf8', start, end);
  try {
    return parseJson(text);
  } catch (err) {
    // V8's message quotes the input; keep only its reason, never body content.
    const message = err instanceof Error ? err.message : String(err);
    const at = / at position (\d+)/.exec(message);
    const reason = message.replace(/ in JSON at position.*$/, '').replace(/, ".*$/s, '');
    if (at) {
      const offset = start + Buffer.byteLength(text.slice(0, Number(at[1])));
      return fail(`invalid JSON at byte ${offset}: ${reason}`);
    }
    return fail(`invalid JSON in the value at byte ${start}: ${reason}`);
  }
}

function fail(message: string): never {
  throw new BodyError(message);
}

// ---------------------------------------------------------------------------------------------
// msgpack

/** Decodes a body msgpackShape passed (so forward's checks are done: msgpackr takes 0xC1 and unknown ext types as objects). */
function unpackMsgpack(body: Buffer): unknown[] {
  try {
    return unpackStream(body);
  } catch (err) {
    const at = (err as { lastPosition?: unknown }).lastPosition;
    const where = typeof at === 'number' ? ` at byte ${at}` : '';
    throw new BodyError(`invalid msgpack${where}: ${oneLine(err)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Records → entries

class EntryBuilder {
  readonly entries: Entry[] = [];
  private readonly fixedTime: EventTime | undefined;
  private readonly options: DecodeOptions;
  // One clock reading per request: cheaper, and records of one request keep their order anyway.
  private now: EventTime | undefined;

  constructor(fixedTime: EventTime | undefined, options: DecodeOptions) {
    this.fixedTime = fixedTime;
    this.options = options;
  }

  addJson(value: unknown, offset: number): void {
    if (isLogRecord(value)) {
      this.addRecord(value);
      return;
    }
    const items = value as unknown[];
    items.forEach((item, index) => {
      if (!isLogRecord(item))
        throw new BodyError(`element ${index} of the array at byte ${offset} is not an object`);
      this.addRecord(item);
    });
  }

  /** A map, an array of maps, or an entry `[time, record]` / `[[time, metadata], record]`. */
  addMsgpack(item: unknown, index: number): void {
    if (isLogRecord(item)) {
      this.addRecord(item);
      return;
    }
    if (!Array.isArray(item))
      throw new BodyError(`msgpack value ${index} is not a map, an array of maps or an entry`);
    if (item.length === 0) return;
    if (isLogRecord(item[0])) {
      item.forEach((record, n) => {
        if (!isLogRecord(record)) throw new BodyError(`element ${n} of msgpack value ${index} is not a map`);
        this.addRecord(record);
      });
      return;
    }
    let entry: Entry | null;
    try {
      entry = toEntry(item);
    } catch (err) {
      throw new BodyError(`msgpack value ${index}: ${oneLine(err)}`);
    }
    if (!entry) return; // a Fluent Bit group marker
    if (!isLogRecord(entry.record) || (entry.metadata !== undefined && !isLogRecord(entry.metadata)))
      throw new BodyError(`msgpack value ${index}: entry record or metadata is not a map`);
    if (this.fixedTime) entry.time = this.fixedTime;
    this.entries.push(entry);
  }

  private addRecord(record: LogRecord): void {
    const time = this.fixedTime ?? takeRecordTime(record, this.options) ?? this.clock();
    this.entries.push({ time, record });
  }

  private clock(): EventTime {
    this.now ??= EventTime.now();
    return this.now;
  }
}

/**
 * The record's `time_key`, else Fluent Bit's `date`, removed unless `keep_time_key`. A value
 * that does not parse stays in the record and the caller uses now: a record is never refused
 * for its timestamp.
 */
export function takeRecordTime(
  record: LogRecord,
  options: Pick<DecodeOptions, 'timeKey' | 'keepTimeKey'>,
): EventTime | undefined {
  const key = Object.hasOwn(record, options.timeKey)
    ? options.timeKey
    : Object.hasOwn(record, FLUENT_BIT_DATE_KEY)
      ? FLUENT_BIT_DATE_KEY
      : undefined;
  if (key === undefined) return undefined;
  const time = parseTime(record[key]);
  if (time && !options.keepTimeKey) delete record[key];
  return time;
}

/** `?time=` (or the form field): unix seconds; `0` means now, as in Fluentd. */
function timeParam(text: string | undefined): EventTime | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const time = parseTime(text);
  if (!time) throw new BodyError(`invalid time parameter ${JSON.stringify(text.slice(0, 64))}`);
  return time.sec === 0 && time.nsec === 0 ? EventTime.now() : time;
}

function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').trim();
}
