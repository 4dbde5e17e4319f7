import snappy from 'snappyjs';
import type { LogRecord, TaggedEntry } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
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

/** One entry as Loki gets it. */
export interface LokiEntry {
  readonly entry: TaggedEntry;
  /** `X-Scope-OrgID`; undefined sends none. */
  readonly tenant: string | undefined;
  /** Label pairs sorted by name. */
  readonly labels: readonly (readonly [string, string])[];
  /** The stream's key and protobuf `labels` field: `{a="b", c="d"}`. */
  readonly stream: string;
  readonly line: string;
  readonly metadata: readonly (readonly [string, string])[];
  /** Bytes of the protobuf EntryAdapter message body. */
  readonly size: number;
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

/** Builds a LokiEntry; `labels` is any order (sorted here). */
export function lokiEntry(
  entry: TaggedEntry,
  tenant: string | undefined,
  labels: Iterable<readonly [string, string]>,
  line: string,
  metadata: readonly (readonly [string, string])[],
): LokiEntry {
  const sorted = [...labels].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    entry,
    tenant,
    labels: sorted,
    stream: labelsText(sorted),
    line,
    metadata,
    size: entrySize(entry.time, line, metadata),
  };
}

// ── requests ─────────────────────────────────────────────────────────────────────────────

export interface Stream {
  readonly stream: string;
  readonly labels: readonly (readonly [string, string])[];
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
      stream.sort((a, b) => a.entry.time.compare(b.entry.time));
      for (const e of stream) ordered.push(e);
    }
  }
  return ordered;
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
  if (encoding === 'json') return { body: Buffer.from(encodeJson(request)), contentType: 'application/json' };
  return { body: snappy.compress(encodeProtobuf(request)), contentType: 'application/x-protobuf' };
}

/**
 * `{"streams":[{"stream":{"a":"b"},"values":[["<unix ns>","<line>",{<metadata>}]]}]}`; the
 * metadata object only when the entry has some.
 */
export function encodeJson(request: PushRequest): string {
  let out = '{"streams":[';
  for (const [i, stream] of request.streams.entries()) {
    if (i > 0) out += ',';
    out += '{"stream":{';
    for (const [j, [name, value]] of stream.labels.entries())
      out += `${j > 0 ? ',' : ''}"${name}":${JSON.stringify(value)}`;
    out += '},"values":[';
    for (const [j, e] of stream.entries.entries()) {
      if (j > 0) out += ',';
      out += `["${unixNanos(e.entry.time)}",${JSON.stringify(e.line)}`;
      if (e.metadata.length > 0) {
        out += ',{';
        for (const [k, [name, value]] of e.metadata.entries())
          out += `${k > 0 ? ',' : ''}${JSON.stringify(name)}:${JSON.stringify(value)}`;
        out += '}';
      }
      out += ']';
    }
    out += ']}';
  }
  return `${out}]}`;
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

function timestampSize(time: EventTime): number {
  return (time.sec > 0 ? 1 + varintSize(time.sec) : 0) + (time.nsec > 0 ? 1 + varintSize(time.nsec) : 0);
}

function pairSize(name: string, value: string): number {
  return stringField(Buffer.byteLength(name)) + stringField(Buffer.byteLength(value));
}

function entrySize(time: EventTime, line: string, metadata: readonly (readonly [string, string])[]): number {
  const ts = timestampSize(time);
  let size = 1 + varintSize(ts) + ts + stringField(Buffer.byteLength(line));
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
      const time = e.entry.time;
      w.byte(KEY_TIMESTAMP);
      w.varint(timestampSize(time));
      if (time.sec > 0) {
        w.byte(KEY_SECONDS);
        w.varint(time.sec);
      }
      if (time.nsec > 0) {
        w.byte(KEY_NANOS);
        w.varint(time.nsec);
      }
      w.string(KEY_LINE, e.line);
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
