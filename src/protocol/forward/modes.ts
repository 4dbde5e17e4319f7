import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { encodeEntry, toEventTime } from '../../core/batch.ts';
import { type Entry, isLogRecord, type LogRecord } from '../../core/entry.ts';
import { EventTime, FLUENT_BIT_GROUP_END, FLUENT_BIT_GROUP_START } from '../../core/event-time.ts';
import { parseJson } from '../../core/json-parse.ts';
import { eventTimeBytes, pack } from '../../core/msgpack.ts';
import { FrameError } from './errors.ts';
import {
  ARRAY,
  BIN,
  EXT,
  FLOAT,
  type Header,
  INT,
  MAP,
  NIL,
  newHeader,
  readHeader,
  STR,
  skipValue,
  u32,
} from './msgpack-scan.ts';

/**
 * The four event modes of the Forward Protocol v1, from one framed message to the entry
 * stream a Batch carries (`[time, record]` or Fluent Bit's `[[time, metadata], record]`, back
 * to back). Records are never decoded: a PackedForward payload that is already a clean entry
 * stream is passed on as the sender's bytes; otherwise only the entries that need it are
 * re-assembled from their byte ranges (time 0/nil → now, nil records and Fluent Bit group
 * markers dropped, source fields added). No sockets here.
 *
 *   Message                 [tag, time, record(, option)]
 *   Forward                 [tag, [[time, record], …](, option)]
 *   PackedForward           [tag, bin|str: entry stream(, option)]
 *   CompressedPackedForward [tag, bin: gzip|zstd(entry stream), {compressed: "gzip"|"zstd", …}]
 */

export type Mode = 'message' | 'forward' | 'packed' | 'compressed';

/** Fluent Bit's `fluent_signal` option: which kind of events a message carries. */
export const SIGNAL_LOGS = 0;
export const SIGNAL_METRICS = 1;
export const SIGNAL_TRACES = 2;

export interface MessageOptions {
  /** `option.chunk` as the sender encoded it (msgpack bytes, or the JSON value's text): the ack echoes it. */
  chunk?: Uint8Array;
  size?: number;
  compressed?: 'gzip' | 'zstd';
  /** 0 logs (also when absent), 1 metrics, 2 traces. */
  signal: number;
}

export interface ParsedMessage {
  tag: string;
  mode: Mode;
  options: MessageOptions;
  /** How to get the entries; `toEntries` does the work. */
  readonly body: Body;
}

type Body =
  /**
   * An entry stream in `buf` between `start` and `end` (a view into the frame); `single`: one
   * entry whose record ends at `end` (Message mode, framed here), so its end need not be sought.
   */
  | { kind: 'stream'; buf: Uint8Array; start: number; end: number; owned: boolean; single?: boolean }
  | { kind: 'compressed'; data: Uint8Array; codec: 'gzip' | 'zstd' }
  /** JSON mode: entries already built. */
  | { kind: 'entries'; entries: Entry[]; items: number };

export interface EntryStream {
  /** Entries back to back; a buffer of its own (not a view into the frame). */
  payload: Buffer;
  /** Entries kept: what the Batch counts. */
  count: number;
  /** Items the sender sent, markers and nil records included: what `option.size` counts. */
  items: number;
}

export interface EntryOptions {
  maxDepth: number;
  /** Cap on a CompressedPackedForward payload once decompressed. */
  maxDecompressedSize: number;
  /** String fields set in every record (Fluentd's source_address_key, source_hostname_key). */
  fields?: readonly (readonly [string, string])[];
}

export interface ParseLimits {
  maxDepth: number;
  /**
   * The frame is known to be one whole value checked to this `maxDepth`, as the frame
   * decoder's scan does: parseMessage need not check it again.
   */
  checked?: boolean;
}

/** A msgpack `nil` on its own: the sender's keepalive, answered with nothing. */
export function isKeepalive(frame: Uint8Array): boolean {
  return frame.length === 1 && frame[0] === 0xc0;
}

/** Reads one msgpack message (not a keepalive). Throws FrameError for anything else. */
export function parseMessage(frame: Uint8Array, limits: ParseLimits): ParsedMessage {
  const h = newHeader();
  const end = frame.length;
  // Check the whole frame first (a no-op pass over a PackedForward payload's bytes), so what
  // follows reads only complete, valid values.
  if (!limits.checked && skipValue(frame, 0, end, limits.maxDepth) !== end)
    throw new FrameError('malformed', 'bytes after the end of the message');
  let p = readHeader(frame, 0, end, h);
  if (h.type !== ARRAY)
    throw new FrameError('malformed', `a message is an array [tag, …], got msgpack type ${typeName(h.type)}`);
  const n = h.length;
  if (n < 2 || n > 4) throw new FrameError('malformed', `a message has 2 to 4 elements, got ${n}`);
  p = readHeader(frame, p, end, h);
  // Fluentd and Fluent Bit send a str; a bin tag would be buffered as whatever bytes it holds.
  if (h.type !== STR)
    throw new FrameError('malformed', `the tag is not a string (msgpack type ${typeName(h.type)})`);
  const tag = Buffer.from(frame.buffer, frame.byteOffset + p, h.length).toString('utf8');
  if (tag === '') throw new FrameError('malformed', 'the tag is empty');
  p += h.length;
  // What follows the tag tells the mode.
  const secondAt = p;
  p = readHeader(frame, p, end, h);
  const second = h.type;
  if (second === STR || second === BIN) {
    if (n > 3) throw new FrameError('malformed', `PackedForward has 2 or 3 elements, got ${n}`);
    const start = p;
    const stop = p + h.length;
    const options = n === 3 ? readOptions(frame, stop, end, limits) : { signal: SIGNAL_LOGS };
    const data = frame.subarray(start, stop);
    const codec = options.compressed ?? sniffCompression(data);
    if (codec) return { tag, mode: 'compressed', options, body: { kind: 'compressed', data, codec } };
    return {
      tag,
      mode: 'packed',
      options,
      body: { kind: 'stream', buf: frame, start, end: stop, owned: false },
    };
  }
  if (second === ARRAY) {
    if (n > 3) throw new FrameError('malformed', `Forward has 2 or 3 elements, got ${n}`);
    const stop = skipValue(frame, secondAt, end, limits.maxDepth);
    const options = n === 3 ? readOptions(frame, stop, end, limits) : { signal: SIGNAL_LOGS };
    if (options.compressed) throw new FrameError('unknown_mode', 'Forward mode entries cannot be compressed');
    return {
      tag,
      mode: 'forward',
      options,
      body: { kind: 'stream', buf: frame, start: p, end: stop, owned: false },
    };
  }
  if (second === INT || second === FLOAT || second === EXT || second === NIL) {
    if (n < 3) throw new FrameError('malformed', 'Message mode needs [tag, time, record]');
    const timeEnd = skipValue(frame, secondAt, end, limits.maxDepth);
    const recordEnd = skipValue(frame, timeEnd, end, limits.maxDepth);
    const { options, metadata } =
      n === 4 ? readOptionsWithMetadata(frame, recordEnd, end, limits) : { options: { signal: SIGNAL_LOGS } };
    if (options.compressed) throw new FrameError('unknown_mode', 'Message mode records cannot be compressed');
    // One entry, [time, record] or [[time, metadata], record], then the common entry rules.
    const time = frame.subarray(secondAt, timeEnd);
    const record = frame.subarray(timeEnd, recordEnd);
    const entry = metadata
      ? Buffer.concat([FIXARRAY_2, FIXARRAY_2, time, metadata, record])
      : Buffer.concat([FIXARRAY_2, time, record]);
    return {
      tag,
      mode: 'message',
      options,
      body: { kind: 'stream', buf: entry, start: 0, end: entry.length, owned: true, single: true },
    };
  }
  throw new FrameError(
    'unknown_mode',
    `no event mode has a ${typeName(second)} after the tag (expected time, entries array or packed entries)`,
  );
}

const FIXARRAY_2 = Buffer.from([0x92]);

function readOptions(buf: Uint8Array, pos: number, end: number, limits: ParseLimits): MessageOptions {
  return readOptionsWithMetadata(buf, pos, end, limits).options;
}

/** The option map: `chunk`, `size`, `compressed`, `fluent_signal` and (Message mode) `metadata`. */
function readOptionsWithMetadata(
  buf: Uint8Array,
  pos: number,
  end: number,
  limits: ParseLimits,
): { options: MessageOptions; metadata?: Uint8Array } {
  const options: MessageOptions = { signal: SIGNAL_LOGS };
  const h = newHeader();
  let p = readHeader(buf, pos, end, h);
  // Old Docker versions send nil options.
  if (h.type === NIL) return { options };
  if (h.type !== MAP)
    throw new FrameError('malformed', `the option is not a map (msgpack type ${typeName(h.type)})`);
  let metadata: Uint8Array | undefined;
  /** Bit i: OPTION_NAMES[i] seen. */
  let seen = 0;
  const v = newHeader();
  for (let i = 0; i < h.length; i++) {
    const keyAt = p;
    const valueAt = skipValue(buf, keyAt, end, limits.maxDepth);
    const valueEnd = skipValue(buf, valueAt, end, limits.maxDepth);
    p = valueEnd;
    const index = optionIndex(buf, keyAt, valueAt, v);
    // The first occurrence counts; any other key (including `__proto__`) is ignored.
    if (index < 0 || (seen & (1 << index)) !== 0) continue;
    seen |= 1 << index;
    const key = OPTION_NAMES[index];
    const body = readHeader(buf, valueAt, end, v);
    switch (key) {
      case 'chunk':
        if (v.type === NIL) break;
        if (v.type !== STR)
          throw new FrameError(
            'malformed',
            `the chunk option is not a string (msgpack type ${typeName(v.type)})`,
          );
        if (v.length > MAX_CHUNK_ID_BYTES) throw chunkTooLong(v.length);
        options.chunk = Buffer.from(buf.subarray(valueAt, valueEnd));
        break;
      case 'size':
        if (v.type === INT && v.value >= 0) options.size = v.value;
        break;
      case 'compressed': {
        if (v.type === NIL) break;
        const name =
          v.type === STR ? Buffer.from(buf.subarray(body, body + v.length)).toString('latin1') : '';
        if (name === 'gzip' || name === 'zstd') options.compressed = name;
        // Fluentd's out_forward says "text" for no compression.
        else if (name !== 'text' && name !== '')
          throw new FrameError('unknown_mode', `unknown compression ${JSON.stringify(name)}`);
        break;
      }
      case 'fluent_signal':
        if (v.type !== INT || v.value < SIGNAL_LOGS || v.value > SIGNAL_TRACES)
          throw new FrameError('unknown_mode', 'fluent_signal must be 0 (logs), 1 (metrics) or 2 (traces)');
        options.signal = v.value;
        break;
      case 'metadata':
        if (v.type === MAP) metadata = buf.subarray(valueAt, valueEnd);
        break;
    }
  }
  return metadata ? { options, metadata } : { options };
}

/**
 * Longest chunk id taken, in bytes: Fluentd and Fluent Bit send 24 bytes of base64 (a
 * 16-byte id). Every id is remembered for the dedupe window and echoed in the ack, so a
 * longer one would cost memory and bandwidth for nothing.
 */
export const MAX_CHUNK_ID_BYTES = 128;

function chunkTooLong(bytes: number): FrameError {
  return new FrameError('malformed', `the chunk option is ${bytes} bytes (at most ${MAX_CHUNK_ID_BYTES})`);
}

const OPTION_NAMES = ['chunk', 'size', 'compressed', 'fluent_signal', 'metadata'] as const;
const OPTION_KEYS = OPTION_NAMES.map((name) => Buffer.from(name, 'latin1'));

/** Which of OPTION_NAMES the str key at `pos` is, or -1: compared as bytes, as every message has options. */
function optionIndex(buf: Uint8Array, pos: number, end: number, h: Header): number {
  const body = readHeader(buf, pos, end, h);
  if (h.type !== STR) return -1;
  next: for (let i = 0; i < OPTION_KEYS.length; i++) {
    const key = OPTION_KEYS[i]!;
    if (key.length !== h.length) continue;
    for (let j = 0; j < key.length; j++) if (buf[body + j] !== key[j]) continue next;
    return i;
  }
  return -1;
}

/** Fluent Bit's in_forward trusts magic bytes when `compressed` is absent; an entry stream never starts so. */
function sniffCompression(data: Uint8Array): 'gzip' | 'zstd' | undefined {
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) return 'gzip';
  if (data.length >= 4 && data[0] === 0x28 && data[1] === 0xb5 && data[2] === 0x2f && data[3] === 0xfd)
    return 'zstd';
  return undefined;
}

const gunzip = promisify(zlib.gunzip);
const zstdDecompress = promisify(zlib.zstdDecompress);

/**
 * Decompresses (off the event loop) and checks the entries; the result owns its bytes.
 * `hold`, when given, is called for every piece of inflated output before it is kept (it
 * waits for room in the in-flight budget), so a payload costs the budget what it inflates to.
 */
export async function toEntries(
  message: ParsedMessage,
  options: EntryOptions,
  hold?: (bytes: number) => Promise<void>,
): Promise<EntryStream> {
  const { body } = message;
  if (body.kind === 'compressed') {
    const data = hold
      ? await inflateHeld(body.data, body.codec, options.maxDecompressedSize, hold)
      : await decompress(body.data, body.codec, options.maxDecompressedSize);
    return scanEntries(data, 0, data.length, options, true);
  }
  return entriesOf(body, options);
}

/** 64 KiB pieces: each is one take from the budget. */
const INFLATE_CHUNK = 64 * 1024;

/** decompress, a piece at a time, each piece held (`hold`) before it is kept. */
async function inflateHeld(
  data: Uint8Array,
  codec: 'gzip' | 'zstd',
  max: number,
  hold: (bytes: number) => Promise<void>,
): Promise<Buffer> {
  if (data.length === 0) return Buffer.alloc(0);
  const stream =
    codec === 'gzip'
      ? zlib.createGunzip({ chunkSize: INFLATE_CHUNK })
      : zlib.createZstdDecompress({ chunkSize: INFLATE_CHUNK });
  stream.end(data);
  const pieces: Buffer[] = [];
  let size = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      size += piece.length;
      if (size > max)
        throw new FrameError('too_large', `${codec} payload is larger than ${max} bytes decompressed`);
      await hold(piece.length);
      pieces.push(piece);
    }
  } catch (err) {
    stream.destroy();
    if (err instanceof FrameError || (err as { name?: string }).name === 'AbortError') throw err;
    throw new FrameError('malformed', `${codec} payload is corrupt: ${(err as Error).message}`);
  }
  return Buffer.concat(pieces, size);
}

/**
 * `toEntries` without the wait, for a message that is not compressed (undefined if it is):
 * lets a connection join many small messages into one Batch within one turn.
 */
export function toEntriesNow(message: ParsedMessage, options: EntryOptions): EntryStream | undefined {
  const { body } = message;
  return body.kind === 'compressed' ? undefined : entriesOf(body, options);
}

function entriesOf(body: Exclude<Body, { kind: 'compressed' }>, options: EntryOptions): EntryStream {
  if (body.kind === 'entries') {
    const entries = options.fields ? body.entries.map((e) => withFields(e, options.fields!)) : body.entries;
    const payload = Buffer.concat(entries.map(encodeEntry));
    return { payload, count: entries.length, items: body.items };
  }
  return scanEntries(body.buf, body.start, body.end, options, body.owned, body.single);
}

export async function decompress(
  data: Uint8Array,
  codec: 'gzip' | 'zstd',
  maxOutputLength: number,
): Promise<Buffer> {
  if (data.length === 0) return Buffer.alloc(0);
  try {
    // Several concatenated gzip members (Fluentd appends one per flush) come out as one stream.
    return codec === 'gzip'
      ? await gunzip(data, { maxOutputLength })
      : await zstdDecompress(data, { maxOutputLength });
  } catch (err) {
    if (err instanceof RangeError || (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new FrameError(
        'too_large',
        `${codec} payload is larger than ${maxOutputLength} bytes decompressed`,
      );
    throw new FrameError('malformed', `${codec} payload is corrupt: ${(err as Error).message}`);
  }
}

/**
 * Checks an entry stream and counts it, without decoding records. Entries that need a change
 * are re-assembled from byte ranges; the rest is passed on as is (copied once when `owned` is
 * false, since the frame's bytes are reused).
 */
export function scanEntries(
  buf: Uint8Array,
  start: number,
  end: number,
  options: EntryOptions,
  owned: boolean,
  single = false,
): EntryStream {
  const h = newHeader();
  const fields = options.fields && options.fields.length > 0 ? encodedFields(options.fields) : undefined;
  let now: Buffer | undefined;
  const nowBytes = () => {
    now ??= eventTimeBytes(EventTime.now());
    return now;
  };
  /** Set once the first entry needs a change: everything before it, then every entry as it goes. */
  let parts: Uint8Array[] | undefined;
  let count = 0;
  let items = 0;
  let p = start;
  while (p < end) {
    const entryAt = p;
    items += 1;
    p = readHeader(buf, p, end, h);
    if (p < 0 || h.type !== ARRAY || h.length !== 2)
      throw new FrameError('malformed', `entry ${items} is not a [time, record] array`);
    // Time: int, float, EventTime, nil, or Fluent Bit's [time, metadata].
    const timeAt = p;
    const timeEnd = skipValue(buf, timeAt, end, options.maxDepth);
    let time: Uint8Array = buf.subarray(timeAt, timeEnd);
    let metadata: Uint8Array | undefined;
    let verdict = judgeTime(buf, timeAt, timeEnd, h);
    if (verdict === ARRAY_TIME) {
      // [[time, metadata], record]
      const q = readHeader(buf, timeAt, timeEnd, h);
      if (h.length !== 2)
        throw new FrameError('malformed', `entry ${items}: metadata form is not [time, metadata]`);
      const innerEnd = skipValue(buf, q, timeEnd, options.maxDepth);
      verdict = judgeTime(buf, q, innerEnd, h);
      if (verdict === ARRAY_TIME)
        throw new FrameError('malformed', `entry ${items}: time is not a number or EventTime`);
      time = buf.subarray(q, innerEnd);
      readHeader(buf, innerEnd, timeEnd, h);
      if (h.type !== MAP && h.type !== NIL)
        throw new FrameError('malformed', `entry ${items}: metadata is not a map`);
      metadata = buf.subarray(innerEnd, timeEnd);
    }
    // Record: a map; nil is skipped, as Fluentd does.
    const recordEnd = single ? end : skipValue(buf, timeEnd, end, options.maxDepth);
    readHeader(buf, timeEnd, end, h);
    const recordType = h.type;
    if (recordType !== MAP && recordType !== NIL)
      throw new FrameError('malformed', `entry ${items}: record is not a map`);
    p = recordEnd;
    const dropped = verdict === MARKER || recordType === NIL;
    const change = dropped || verdict !== OK || fields !== undefined;
    if (change && !parts) parts = [buf.subarray(start, entryAt)];
    if (dropped) continue;
    count += 1;
    if (!parts) continue;
    if (!change) {
      parts.push(buf.subarray(entryAt, recordEnd));
      continue;
    }
    const timeBytes = verdict === OK ? time : verdict === NOW ? nowBytes() : timestampToEventTime(time);
    const record = fields
      ? withFieldBytes(buf, timeEnd, recordEnd, fields, options.maxDepth)
      : buf.subarray(timeEnd, recordEnd);
    if (metadata) parts.push(FIXARRAY_2, FIXARRAY_2, timeBytes, metadata, record);
    else parts.push(FIXARRAY_2, timeBytes, record);
  }
  if (parts) return { payload: Buffer.concat(parts), count, items };
  const view = buf.subarray(start, end);
  const payload = owned ? Buffer.from(view.buffer, view.byteOffset, view.byteLength) : Buffer.from(view);
  return { payload, count, items };
}

/** judgeTime's verdicts: keep the bytes; use now; a Fluent Bit group marker; convert a timestamp ext; an array (metadata form). */
const OK = 0;
const NOW = 1;
const MARKER = 2;
const CONVERT = 3;
const ARRAY_TIME = 4;

function judgeTime(buf: Uint8Array, pos: number, end: number, h: Header): number {
  const body = readHeader(buf, pos, end, h);
  switch (h.type) {
    case INT:
      // Fluentd takes 0 as "now"; a time an EventTime cannot hold (negative, or past its 32-bit
      // seconds: epoch nanoseconds sent as an integer, say) becomes now too.
      return h.value > 0 && h.value <= 0xffffffff ? OK : NOW;
    case FLOAT:
      return Number.isFinite(h.value) && h.value > 0 && h.value < 2 ** 32 ? OK : NOW;
    case NIL:
      return NOW;
    case EXT: {
      if (h.value === -1) return CONVERT;
      const sec = u32(buf, body);
      if (sec === FLUENT_BIT_GROUP_START || sec === FLUENT_BIT_GROUP_END) return MARKER;
      // An empty EventTime is "now" in Fluentd (`time.to_i == 0`).
      return sec === 0 ? NOW : OK;
    }
    case ARRAY:
      return ARRAY_TIME;
    default:
      throw new FrameError('malformed', `entry time is a ${typeName(h.type)}, not a number or EventTime`);
  }
}

/** The msgpack timestamp ext (-1) some libraries use, as an EventTime. */
function timestampToEventTime(bytes: Uint8Array): Buffer {
  const h = newHeader();
  const body = readHeader(bytes, 0, bytes.length, h);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset + body, h.length);
  let sec: number;
  let nsec: number;
  if (h.length === 4) {
    sec = b.readUInt32BE(0);
    nsec = 0;
  } else if (h.length === 8) {
    const hi = b.readUInt32BE(0);
    nsec = hi >>> 2;
    sec = (hi & 0x3) * 2 ** 32 + b.readUInt32BE(4);
  } else {
    nsec = b.readUInt32BE(0);
    sec = Number(b.readBigInt64BE(4));
  }
  if (sec <= 0 || sec > 0xfffffffd) return eventTimeBytes(EventTime.now());
  return eventTimeBytes(new EventTime(sec, Math.min(nsec, 999_999_999)));
}

interface EncodedFields {
  keys: Buffer[];
  pairs: Buffer;
  count: number;
}

/** Per fields array: a connection passes the same one with every message. */
const fieldsCache = new WeakMap<readonly (readonly [string, string])[], EncodedFields>();

function encodedFields(fields: readonly (readonly [string, string])[]): EncodedFields {
  let encoded = fieldsCache.get(fields);
  if (encoded === undefined) {
    encoded = encodeFields(fields);
    fieldsCache.set(fields, encoded);
  }
  return encoded;
}

function encodeFields(fields: readonly (readonly [string, string])[]): EncodedFields {
  return {
    keys: fields.map(([k]) => Buffer.from(k, 'utf8')),
    pairs: Buffer.concat(fields.flatMap(([k, v]) => [pack(k), pack(v)])),
    count: fields.length,
  };
}

/** The record map at [start, end) with `fields` set: existing pairs of those keys dropped, the fields appended. */
function withFieldBytes(
  buf: Uint8Array,
  start: number,
  end: number,
  fields: EncodedFields,
  maxDepth: number,
): Buffer {
  const h = newHeader();
  let p = readHeader(buf, start, end, h);
  const pairs = h.length;
  const kept: Uint8Array[] = [];
  let keptCount = 0;
  let runStart = p;
  for (let i = 0; i < pairs; i++) {
    const keyAt = p;
    const valueAt = skipValue(buf, keyAt, end, maxDepth);
    const next = skipValue(buf, valueAt, end, maxDepth);
    const body = readHeader(buf, keyAt, valueAt, h);
    const clash =
      h.type === STR &&
      fields.keys.some((k) => k.length === h.length && k.equals(buf.subarray(body, body + h.length)));
    if (clash) {
      if (keyAt > runStart) kept.push(buf.subarray(runStart, keyAt));
      runStart = next;
    } else keptCount += 1;
    p = next;
  }
  if (p > runStart) kept.push(buf.subarray(runStart, p));
  return Buffer.concat([mapHeader(keptCount + fields.count), ...kept, fields.pairs]);
}

function mapHeader(n: number): Buffer {
  if (n <= 15) return Buffer.from([0x80 | n]);
  if (n <= 0xffff) return Buffer.from([0xde, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xdf;
  b.writeUInt32BE(n, 1);
  return b;
}

function withFields(entry: Entry, fields: readonly (readonly [string, string])[]): Entry {
  for (const [key, value] of fields)
    Object.defineProperty(entry.record, key, { value, enumerable: true, writable: true, configurable: true });
  return entry;
}

function typeName(type: number): string {
  return ['nil', 'boolean', 'integer', 'float', 'string', 'binary', 'array', 'map', 'ext'][type] ?? 'unknown';
}

// ───────────────────────────── JSON mode ─────────────────────────────

/** A JSON-mode message: Message or Forward mode, acked in JSON. */
export function parseJsonMessage(frame: Uint8Array): ParsedMessage {
  let value: unknown;
  try {
    value = parseJson(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('utf8'));
  } catch (err) {
    throw new FrameError('malformed', `invalid JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new FrameError('malformed', 'a message is an array [tag, …]');
  const n = value.length;
  if (n < 2 || n > 4) throw new FrameError('malformed', `a message has 2 to 4 elements, got ${n}`);
  const [tag, second] = value as unknown[];
  if (typeof tag !== 'string' || tag === '')
    throw new FrameError('malformed', 'the tag is not a non-empty string');
  if (Array.isArray(second)) {
    if (n > 3) throw new FrameError('malformed', `Forward has 2 or 3 elements, got ${n}`);
    const options = jsonOptions(value[2]);
    const now = lazyNow();
    const entries: Entry[] = [];
    second.forEach((item, index) => {
      const entry = jsonEntry(item, index + 1, now);
      if (entry) entries.push(entry);
    });
    return { tag, mode: 'forward', options, body: { kind: 'entries', entries, items: second.length } };
  }
  if (typeof second === 'number' || second === null) {
    if (n < 3) throw new FrameError('malformed', 'Message mode needs [tag, time, record]');
    const options = jsonOptions(value[3]);
    const entry = jsonEntry([second, value[2]], 1, lazyNow());
    return {
      tag,
      mode: 'message',
      options,
      body: { kind: 'entries', entries: entry ? [entry] : [], items: 1 },
    };
  }
  throw new FrameError('unknown_mode', 'JSON mode carries Message or Forward mode only');
}

function lazyNow(): () => EventTime {
  let now: EventTime | undefined;
  return () => {
    now ??= EventTime.now();
    return now;
  };
}

function jsonEntry(item: unknown, index: number, now: () => EventTime): Entry | null {
  if (!Array.isArray(item) || item.length !== 2)
    throw new FrameError('malformed', `entry ${index} is not a [time, record] array`);
  const [head, record] = item as [unknown, unknown];
  let time: unknown = head;
  let metadata: LogRecord | undefined;
  if (Array.isArray(head)) {
    if (head.length !== 2)
      throw new FrameError('malformed', `entry ${index}: metadata form is not [time, metadata]`);
    time = head[0];
    if (head[1] !== null) {
      if (!isLogRecord(head[1]))
        throw new FrameError('malformed', `entry ${index}: metadata is not an object`);
      metadata = head[1];
    }
  }
  if (time !== null && typeof time !== 'number')
    throw new FrameError('malformed', `entry ${index}: time is not a number`);
  if (record === null) return null;
  if (!isLogRecord(record)) throw new FrameError('malformed', `entry ${index}: record is not an object`);
  const eventTime = (typeof time === 'number' && time > 0 && toEventTime(time)) || now();
  return metadata ? { time: eventTime, record, metadata } : { time: eventTime, record };
}

function jsonOptions(value: unknown): MessageOptions {
  const options: MessageOptions = { signal: SIGNAL_LOGS };
  if (value === undefined || value === null) return options;
  if (!isLogRecord(value)) throw new FrameError('malformed', 'the option is not an object');
  const own = (key: string): unknown => (Object.hasOwn(value, key) ? value[key] : undefined);
  const chunk = own('chunk');
  if (chunk !== undefined && chunk !== null) {
    if (typeof chunk !== 'string') throw new FrameError('malformed', 'the chunk option is not a string');
    const bytes = Buffer.byteLength(chunk, 'utf8');
    if (bytes > MAX_CHUNK_ID_BYTES) throw chunkTooLong(bytes);
    options.chunk = Buffer.from(JSON.stringify(chunk), 'utf8');
  }
  const size = own('size');
  if (typeof size === 'number' && Number.isInteger(size) && size >= 0) options.size = size;
  const compressed = own('compressed');
  if (compressed !== undefined && compressed !== null && compressed !== 'text')
    throw new FrameError('unknown_mode', 'JSON mode cannot carry compressed entries');
  const signal = own('fluent_signal');
  if (signal !== undefined) {
    if (signal !== SIGNAL_LOGS && signal !== SIGNAL_METRICS && signal !== SIGNAL_TRACES)
      throw new FrameError('unknown_mode', 'fluent_signal must be 0 (logs), 1 (metrics) or 2 (traces)');
    options.signal = signal;
  }
  return options;
}

// ───────────────────────────── encoding (clients, tests) ─────────────────────────────

export interface SendOptions {
  chunk?: string;
  size?: number;
  compressed?: 'gzip' | 'zstd';
  fluent_signal?: number;
}

function optionBytes(options: SendOptions | undefined): Buffer[] {
  if (!options) return [];
  const map: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) if (v !== undefined) map[k] = v;
  return [pack(map)];
}

function arrayHeader(n: number): Buffer {
  if (n <= 15) return Buffer.from([0x90 | n]);
  if (n <= 0xffff) return Buffer.from([0xdc, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

function timeBytes(time: EventTime | number): Buffer {
  return time instanceof EventTime ? eventTimeBytes(time) : pack(time);
}

/** `[tag, time, record(, option)]`. */
export function encodeMessageMode(
  tag: string,
  time: EventTime | number,
  record: LogRecord,
  options?: SendOptions,
): Buffer {
  const opt = optionBytes(options);
  return Buffer.concat([arrayHeader(3 + opt.length), pack(tag), timeBytes(time), pack(record), ...opt]);
}

/** `[tag, [[time, record], …](, option)]`. */
export function encodeForwardMode(tag: string, entries: readonly Entry[], options?: SendOptions): Buffer {
  const opt = optionBytes(options);
  return Buffer.concat([
    arrayHeader(2 + opt.length),
    pack(tag),
    arrayHeader(entries.length),
    ...entries.map(encodeEntry),
    ...opt,
  ]);
}

/** `[tag, bin(entry stream), option]`: pass `compressed` with an already compressed payload. */
/** `payload`: the entry stream, whole or in pieces sent back to back. */
export function encodePackedForward(
  tag: string,
  payload: Uint8Array | readonly Uint8Array[],
  options?: SendOptions,
): Buffer {
  const opt = optionBytes(options);
  const parts = payload instanceof Uint8Array ? [payload] : payload;
  let length = 0;
  for (const part of parts) length += part.length;
  return Buffer.concat([arrayHeader(2 + opt.length), pack(tag), binHeader(length), ...parts, ...opt]);
}

function binHeader(n: number): Buffer {
  if (n <= 0xff) return Buffer.from([0xc4, n]);
  if (n <= 0xffff) return Buffer.from([0xc5, n >> 8, n & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xc6;
  b.writeUInt32BE(n, 1);
  return b;
}
