import snappy from 'snappyjs';
import { decodeEntries, encodeEntry } from '../../core/batch.ts';
import type { LogRecord, TaggedEntry } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { writeJsonString } from '../../core/msgpack-json.ts';
import { getPath, withoutPath } from '../../core/record-path.ts';
import { toJson } from '../../core/to-json.ts';
import { type RequestLimits, splitRequests } from '../../delivery/request.ts';
import { labelValue } from './labels.ts';

/**
 * Entries → Loki push bodies, and nothing else: no I/O, no clock. The same entries give the
 * same bytes, which the tests in test/outputs/loki/ check against a decoder of their own.
 *
 *   record ─► line (remove_keys, label keys and structured metadata left out; json | key_value;
 *             drop_single_key) ─► LokiEntry { tenant, labels, line, metadata }
 *             (entries.ts writes most lines from the records' msgpack bytes; shapeRecord and
 *             formatLine below are the decoded path, and the reference it must match)
 *   LokiEntry[] ─► per tenant, per label set, sorted by time ─► requests of ≤ batch_size
 *             ─► protobuf (PushRequest, snappy) | JSON {"streams":[{"stream","values"}]}
 *
 * The protobuf is written by hand from push.proto: four small messages of strings and
 * varints, sized exactly in one pass and written into one buffer in a second, with no
 * per-message objects. push.proto is the schema; the test fake decodes with it.
 */

export type LineFormat = 'json' | 'key_value';
export type DropSingleKey = boolean | 'raw';

export interface LineSettings {
  lineFormat: LineFormat;
  dropSingleKey: DropSingleKey;
  removeKeys: readonly (readonly string[])[];
  structuredMetadata: readonly { name: string; path: readonly string[] }[];
}

export type Pair = readonly [string, string];

/** One entry as Loki gets it. */
export interface LokiEntry {
  /** Where the entry lies in its batch: it is decoded only when handed back (retry, reject). */
  readonly tag: string;
  readonly payload: Uint8Array;
  readonly start: number;
  readonly end: number;
  readonly sec: number;
  readonly nsec: number;
  /** `X-Scope-OrgID`; undefined sends none. */
  readonly tenant: string | undefined;
  /** Label pairs sorted by name. */
  readonly labels: readonly Pair[];
  /** The stream's key and protobuf `labels` field: `{a="b", c="d"}`. */
  readonly stream: string;
  /** The line, as UTF-8: bytes lineStart to lineEnd of the chunk's line buffer. */
  readonly lines: JsonBuffer;
  readonly lineStart: number;
  readonly lineEnd: number;
  readonly metadata: readonly Pair[];
  /** Labels the cardinality guard sent as metadata instead (counted once delivered). */
  readonly demoted: readonly string[] | undefined;
  /** Bytes of the protobuf EntryAdapter message body. */
  readonly size: number;
}

/** A stream as entries point to it: one object per label set, shared by its entries. */
export interface StreamTarget {
  readonly tenant: string | undefined;
  readonly labels: readonly Pair[];
  readonly stream: string;
  readonly demoted: readonly string[] | undefined;
}

/** Where an entry lies in its batch's payload, and its time (an EntryCursor is one). */
export interface EntryBytes {
  readonly payload: Uint8Array;
  readonly start: number;
  readonly end: number;
  readonly sec: number;
  readonly nsec: number;
}

/** The one place LokiEntry objects are made, so they all have one shape. */
export function newEntry(
  tag: string,
  at: EntryBytes,
  target: StreamTarget,
  lines: JsonBuffer,
  lineStart: number,
  lineEnd: number,
  metadata: readonly Pair[],
): LokiEntry {
  return {
    tag,
    payload: at.payload,
    start: at.start,
    end: at.end,
    sec: at.sec,
    nsec: at.nsec,
    tenant: target.tenant,
    labels: target.labels,
    stream: target.stream,
    lines,
    lineStart,
    lineEnd,
    metadata,
    demoted: target.demoted,
    size: entrySize(at.sec, at.nsec, lineEnd - lineStart, metadata),
  };
}

/** The entry as the buffer knows it, decoded from its bytes (for a retry or a rejection). */
export function decodeEntry(e: LokiEntry): TaggedEntry {
  const [entry] = decodeEntries(e.payload.subarray(e.start, e.end));
  return { ...entry!, tag: e.tag };
}

/** The line's bytes (a view: valid while the chunk's line buffer is). */
export function lineOf(e: LokiEntry): Buffer {
  return e.lines.buf.subarray(e.lineStart, e.lineEnd);
}

/** What a record's line and metadata come to once its labels are known. */
export function shapeRecord(
  record: LogRecord,
  consumed: readonly (readonly string[])[],
  s: LineSettings,
): { line: string; metadata: [string, string][] } {
  const metadata: [string, string][] = [];
  let rest = record;
  for (const { name, path } of s.structuredMetadata) {
    const value = labelValue(getPath(record, path));
    if (value !== undefined) metadata.push([name, value]);
    rest = withoutPath(rest, path);
  }
  for (const path of consumed) rest = withoutPath(rest, path);
  for (const path of s.removeKeys) rest = withoutPath(rest, path);
  return { line: formatLine(rest, s.lineFormat, s.dropSingleKey), metadata };
}

/** `record` without the value at `path`, copying only the maps on the way there. */

/**
 * The log line. `json`: the record as JSON. `key_value`: `key=value` pairs in record order,
 * values quoted (JSON string escapes) when they hold a space, `=`, `"` or a control character,
 * maps and arrays as JSON. `drop_single_key` with one key left: `true` writes that value as
 * the format would (`"text"` in json), `raw` writes a string as it is.
 */
export function formatLine(record: LogRecord, format: LineFormat, dropSingleKey: DropSingleKey): string {
  if (dropSingleKey !== false) {
    const keys = Object.keys(record);
    if (keys.length === 1) {
      const value = record[keys[0]!];
      if (dropSingleKey === 'raw') {
        const text = asText(value);
        if (text !== undefined) return text;
      }
      return format === 'json' ? toJson(value) : logfmtValue(value);
    }
  }
  if (format === 'json') return toJson(record);
  let line = '';
  for (const [key, value] of Object.entries(record)) {
    if (line !== '') line += ' ';
    line += `${logfmtKey(key)}=${logfmtValue(value)}`;
  }
  return line;
}

function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return undefined;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters force quoting
const NEEDS_QUOTES = /[\s="\\\x00-\x1f\x7f]/;

function logfmtKey(key: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters cannot stand in a key
  const clean = key.replace(/[\s="\x00-\x1f\x7f]/g, '_');
  return clean === '' ? '_' : clean;
}

function logfmtValue(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  if (value instanceof EventTime) return value.toIso();
  const text = asText(value) ?? toJson(value);
  return text === '' || NEEDS_QUOTES.test(text) ? JSON.stringify(text) : text;
}

/** A label set as Loki writes it: `{a="b", c="d"}`, names sorted, values escaped as Go (and JSON) strings. */
export function labelsText(labels: readonly (readonly [string, string])[]): string {
  let out = '{';
  for (const [i, [name, value]] of labels.entries())
    out += `${i === 0 ? '' : ', '}${name}=${JSON.stringify(value)}`;
  return `${out}}`;
}

/** Label pairs sorted by name, and the stream's key. */
export function streamOf(labels: Iterable<Pair>): { labels: Pair[]; stream: string } {
  const sorted = [...labels].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { labels: sorted, stream: labelsText(sorted) };
}

/** Builds a LokiEntry from a decoded entry and its line as text; `labels` is any order (sorted here). */
export function lokiEntry(
  entry: TaggedEntry,
  tenant: string | undefined,
  labels: Iterable<Pair>,
  line: string,
  metadata: readonly Pair[],
  lines = new JsonBuffer(Buffer.byteLength(line)),
): LokiEntry {
  const payload = encodeEntry(entry);
  const at = { payload, start: 0, end: payload.length, sec: entry.time.sec, nsec: entry.time.nsec };
  const lineStart = lines.n;
  lines.utf8(line);
  const target = { tenant, ...streamOf(labels), demoted: undefined };
  return newEntry(entry.tag, at, target, lines, lineStart, lines.n, metadata);
}

// ── requests ─────────────────────────────────────────────────────────────────────────────

export interface Stream {
  readonly stream: string;
  readonly labels: readonly Pair[];
  readonly entries: LokiEntry[];
}

export interface PushRequest {
  readonly tenant: string | undefined;
  readonly streams: Stream[];
  /** Bytes of the protobuf body before compression (an upper bound). */
  readonly bytes: number;
  readonly count: number;
}

/**
 * Entries in the order they are pushed: by tenant, then by label set (each in the order first
 * seen), each stream sorted by time (seconds, then nanoseconds; entries of equal time keep
 * their order). A stream cut across requests so goes out oldest part first.
 */
export function pushOrder(entries: readonly LokiEntry[]): LokiEntry[] {
  const tenants = new Map<string | undefined, Map<string, LokiEntry[]>>();
  for (const e of entries) {
    let streams = tenants.get(e.tenant);
    if (!streams) {
      streams = new Map();
      tenants.set(e.tenant, streams);
    }
    let stream = streams.get(e.stream);
    if (!stream) {
      stream = [];
      streams.set(e.stream, stream);
    }
    stream.push(e);
  }
  const ordered: LokiEntry[] = [];
  for (const streams of tenants.values()) {
    for (const stream of streams.values()) {
      if (!inTimeOrder(stream)) stream.sort(byTime);
      for (const e of stream) ordered.push(e);
    }
  }
  return ordered;
}

function byTime(a: LokiEntry, b: LokiEntry): number {
  return a.sec - b.sec || a.nsec - b.nsec;
}

/** Most streams arrive in time order already: a look costs less than a sort. */
function inTimeOrder(stream: readonly LokiEntry[]): boolean {
  for (let i = 1; i < stream.length; i++) if (byTime(stream[i - 1]!, stream[i]!) > 0) return false;
  return true;
}

/**
 * How the request layer cuts pushes: one tenant each, at most `maxBytes` of protobuf, a
 * stream's labels counted with its first entry in a request. An entry larger than `maxBytes`
 * goes alone.
 */
export function pushLimits(maxBytes: number): RequestLimits<LokiEntry> {
  return {
    maxBytes,
    group: (e) => e.tenant,
    bytes: (e, previous) => entryCost(e) + (previous?.stream === e.stream ? 0 : streamHeadSize(e.stream)),
  };
}

/** The push of these entries (one tenant's, in push order): streams in the order first seen. */
export function pushRequest(entries: readonly LokiEntry[]): PushRequest {
  const streams = new Map<string, Stream>();
  let bytes = 0;
  for (const e of entries) {
    let stream = streams.get(e.stream);
    if (!stream) {
      stream = { stream: e.stream, labels: e.labels, entries: [] };
      streams.set(e.stream, stream);
      bytes += streamHeadSize(e.stream);
    }
    stream.entries.push(e);
    bytes += entryCost(e);
  }
  return { tenant: entries[0]?.tenant, streams: [...streams.values()], bytes, count: entries.length };
}

/** The pushes of these entries, as the output sends them (before any 413 halving). */
export function planRequests(entries: readonly LokiEntry[], maxBytes: number): PushRequest[] {
  return splitRequests(pushOrder(entries), pushLimits(maxBytes)).map(pushRequest);
}

/** Bytes an entry takes in its stream: key, length, message. */
function entryCost(e: LokiEntry): number {
  return 1 + varintSize(e.size) + e.size;
}

// ── bodies ───────────────────────────────────────────────────────────────────────────────

export interface Body {
  body: Buffer;
  contentType: string;
}

/** The push body: snappy-compressed protobuf, or JSON (compressed, if at all, by the client). */
export function encodeRequest(request: PushRequest, encoding: 'protobuf' | 'json'): Body {
  if (encoding === 'json') return { body: encodeJson(request), contentType: 'application/json' };
  return { body: snappy.compress(encodeProtobuf(request)), contentType: 'application/x-protobuf' };
}

/**
 * `{"streams":[{"stream":{"a":"b"},"values":[["<unix ns>","<line>",{<metadata>}]]}]}`; the
 * metadata object only when the entry has some.
 */
export function encodeJson(request: PushRequest): Buffer {
  let lineBytes = 0;
  for (const stream of request.streams) for (const e of stream.entries) lineBytes += e.lineEnd - e.lineStart;
  const out = new JsonBuffer(Math.ceil(lineBytes * 1.2) + request.count * 40 + 256);
  out.ascii('{"streams":[');
  for (const [i, stream] of request.streams.entries()) {
    if (i > 0) out.byte(0x2c); // ,
    let labels = '{"stream":{';
    for (const [j, [name, value]] of stream.labels.entries())
      labels += `${j > 0 ? ',' : ''}"${name}":${JSON.stringify(value)}`;
    out.utf8(`${labels}},"values":[`);
    for (const [j, e] of stream.entries.entries()) {
      out.ascii(j > 0 ? ',["' : '["');
      if (e.sec === 0) out.uint(e.nsec);
      else {
        out.uint(e.sec);
        out.padded(e.nsec, 9);
      }
      out.ascii('",');
      writeJsonString(out, e.lines.buf, e.lineStart, e.lineEnd);
      if (e.metadata.length > 0) {
        let metadata = ',{';
        for (const [k, [name, value]] of e.metadata.entries())
          metadata += `${k > 0 ? ',' : ''}${JSON.stringify(name)}:${JSON.stringify(value)}`;
        out.utf8(`${metadata}}`);
      }
      out.byte(0x5d); // ]
    }
    out.ascii(']}');
  }
  out.ascii(']}');
  return out.view();
}

/** Nanoseconds since the epoch as decimal text, exactly (no float on the way). */
export function unixNanos(time: EventTime): string {
  return time.sec === 0 ? String(time.nsec) : `${time.sec}${String(time.nsec).padStart(9, '0')}`;
}

// ── protobuf ─────────────────────────────────────────────────────────────────────────────
// Wire format: a field is a varint key (number << 3 | wire type), then for wire type 2
// (length-delimited: strings, messages) a varint length and the bytes, for type 0 a varint.
// proto3 leaves zero numbers and empty strings out; embedded messages are always written.

const KEY_STREAMS = 0x0a; // PushRequest.streams = 1, length-delimited
const KEY_LABELS = 0x0a; // StreamAdapter.labels = 1
const KEY_ENTRIES = 0x12; // StreamAdapter.entries = 2
const KEY_TIMESTAMP = 0x0a; // EntryAdapter.timestamp = 1
const KEY_LINE = 0x12; // EntryAdapter.line = 2
const KEY_METADATA = 0x1a; // EntryAdapter.structuredMetadata = 3
const KEY_NAME = 0x0a; // LabelPairAdapter.name = 1
const KEY_VALUE = 0x12; // LabelPairAdapter.value = 2
const KEY_SECONDS = 0x08; // Timestamp.seconds = 1, varint
const KEY_NANOS = 0x10; // Timestamp.nanos = 2, varint

/** Bytes of a varint; `n` is a non-negative integer below 2^53. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size += 1;
  }
  return size;
}

function stringField(bytes: number): number {
  return bytes === 0 ? 0 : 1 + varintSize(bytes) + bytes;
}

function timestampSize(sec: number, nsec: number): number {
  return (sec > 0 ? 1 + varintSize(sec) : 0) + (nsec > 0 ? 1 + varintSize(nsec) : 0);
}

function pairSize(name: string, value: string): number {
  return stringField(Buffer.byteLength(name)) + stringField(Buffer.byteLength(value));
}

function entrySize(sec: number, nsec: number, lineBytes: number, metadata: readonly Pair[]): number {
  const ts = timestampSize(sec, nsec);
  let size = 1 + varintSize(ts) + ts + stringField(lineBytes);
  for (const [name, value] of metadata) {
    const pair = pairSize(name, value);
    size += 1 + varintSize(pair) + pair;
  }
  return size;
}

/** The labels field and the stream's own key and length, as an upper bound before its entries. */
function streamHeadSize(stream: string): number {
  return 1 + 5 + stringField(Buffer.byteLength(stream));
}

class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  string(key: number, text: string): void {
    if (text === '') return;
    this.byte(key);
    this.varint(Buffer.byteLength(text));
    this.pos += this.buf.write(text, this.pos, 'utf8');
  }

  /** A string field from UTF-8 bytes already written: `src[start, end)`. */
  bytes(key: number, src: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (length === 0) return;
    this.byte(key);
    this.varint(length);
    const buf = this.buf;
    let pos = this.pos;
    if (length < 64) for (let i = start; i < end; i++) buf[pos++] = src[i]!;
    else {
      buf.set(src.subarray(start, end), pos);
      pos += length;
    }
    this.pos = pos;
  }
}

/** PushRequest bytes (uncompressed). */
export function encodeProtobuf(request: PushRequest): Buffer {
  const streamSizes: number[] = [];
  let total = 0;
  for (const stream of request.streams) {
    let size = stringField(Buffer.byteLength(stream.stream));
    for (const e of stream.entries) size += 1 + varintSize(e.size) + e.size;
    streamSizes.push(size);
    total += 1 + varintSize(size) + size;
  }
  const w = new Writer(total);
  for (const [i, stream] of request.streams.entries()) {
    w.byte(KEY_STREAMS);
    w.varint(streamSizes[i]!);
    w.string(KEY_LABELS, stream.stream);
    for (const e of stream.entries) {
      w.byte(KEY_ENTRIES);
      w.varint(e.size);
      w.byte(KEY_TIMESTAMP);
      w.varint(timestampSize(e.sec, e.nsec));
      if (e.sec > 0) {
        w.byte(KEY_SECONDS);
        w.varint(e.sec);
      }
      if (e.nsec > 0) {
        w.byte(KEY_NANOS);
        w.varint(e.nsec);
      }
      w.bytes(KEY_LINE, e.lines.buf, e.lineStart, e.lineEnd);
      for (const [name, value] of e.metadata) {
        w.byte(KEY_METADATA);
        w.varint(pairSize(name, value));
        w.string(KEY_NAME, name);
        w.string(KEY_VALUE, value);
      }
    }
  }
  if (w.pos !== total) throw new Error(`protobuf size mismatch: wrote ${w.pos} of ${total} bytes`);
  return w.buf;
}
