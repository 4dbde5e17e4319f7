import { createHash } from 'node:crypto';
import { encodeEntry } from '../../core/batch.ts';
import { isLogRecord, type LogRecord, type TaggedEntry } from '../../core/entry.ts';
import type { EventTime } from '../../core/event-time.ts';
import { getPath, withoutPath } from '../../core/record-path.ts';
import { strftime } from '../../core/strftime.ts';
import { toJson } from '../../core/to-json.ts';
import { encodeFailure } from '../format.ts';
import type { Rejection } from '../output.ts';
import type { ElasticsearchConfig } from './config.ts';
import { IndexName } from './index-name.ts';

/**
 * Records → `_bulk` NDJSON, and nothing else: no I/O, no clock, no randomness. The same
 * entries and settings always give the same bytes, which is what makes `_id`s stable across
 * retries and what the golden tests in test/outputs/elasticsearch/testdata/ check.
 *
 *   entry ─► _id (id_key | hash of tag, time, record) ─► index name (record time, tag, record)
 *         ─► document (remove_keys, tag_key, time_key, replace_dots) ─► action line + source line
 */

/** The bulk action a document is sent with. `upsert` is an `update` with `doc_as_upsert`. */
export type BulkOp = 'create' | 'index' | 'update';

export interface EncodeSettings {
  writeOperation: ElasticsearchConfig['write_operation'];
  index: IndexName;
  generateId: boolean;
  idKey: readonly string[] | undefined;
  routingKey: readonly string[] | undefined;
  removeKeys: readonly (readonly string[])[];
  timeKey: string;
  timeKeyFormat: string | undefined;
  includeTagKey: boolean;
  tagKey: string;
  replaceDots: boolean;
  pipeline: string | undefined;
  /** `_type` for clusters older than 7; undefined sends none. */
  typeName: string | undefined;
}

export function encodeSettings(config: ElasticsearchConfig): EncodeSettings {
  return {
    writeOperation: config.data_stream ? 'create' : config.write_operation,
    index: config.logstash_format
      ? IndexName.logstash(
          config.logstash_prefix,
          config.logstash_prefix_separator,
          config.logstash_dateformat,
        )
      : new IndexName(config.index),
    generateId: config.generate_id,
    idKey: config.id_key,
    routingKey: config.routing_key,
    removeKeys: config.remove_keys,
    timeKey: config.time_key,
    timeKeyFormat: config.time_key_format,
    includeTagKey: config.include_tag_key,
    tagKey: config.tag_key,
    replaceDots: config.replace_dots,
    pipeline: config.pipeline,
    typeName: config.suppress_type_name ? undefined : '_doc',
  };
}

/** One document's two NDJSON lines (no newlines inside either), with what it came from. */
export interface BulkItem {
  readonly entry: TaggedEntry;
  readonly op: BulkOp;
  readonly action: string;
  readonly source: string;
  /** Bytes both lines take in the request body, newlines included. */
  readonly bytes: number;
}

export interface Encoded {
  items: BulkItem[];
  /** Entries that cannot become a bulk action at all (e.g. an update without an _id). */
  rejected: Rejection[];
}

export function encodeBulk(entries: readonly TaggedEntry[], settings: EncodeSettings): Encoded {
  const items: BulkItem[] = [];
  const rejected: Rejection[] = [];
  for (const entry of entries) {
    let item: BulkItem | string;
    try {
      item = encodeItem(entry, settings);
    } catch (err) {
      // Encoding is pure: what fails once (a record too deep for the stack) fails every time.
      item = encodeFailure(err);
    }
    if (typeof item === 'string') rejected.push({ entry, reason: item });
    else items.push(item);
  }
  return { items, rejected };
}

/** The request body for these items: every line ends in `\n`, as `_bulk` requires. */
export function bulkBody(items: readonly BulkItem[]): string {
  let out = '';
  for (const item of items) out += `${item.action}\n${item.source}\n`;
  return out;
}

/** A bulk item, or why the entry cannot be one. */
export function encodeItem(entry: TaggedEntry, s: EncodeSettings): BulkItem | string {
  const op: BulkOp = s.writeOperation === 'upsert' ? 'update' : s.writeOperation;
  const given = s.idKey ? scalarText(getPath(entry.record, s.idKey)) : undefined;
  // An update names an existing document: a generated id would name none.
  const id = given ?? (s.generateId && op !== 'update' ? documentId(entry) : undefined);
  if (op === 'update' && id === undefined) {
    return `write_operation ${s.writeOperation} needs an _id, and the record has no ${s.idKey?.join('.') ?? 'id'}`;
  }
  const meta: Record<string, string> = { _index: s.index.resolve(entry) };
  if (s.typeName !== undefined) meta._type = s.typeName;
  if (id !== undefined) meta._id = id;
  const routing = s.routingKey ? scalarText(getPath(entry.record, s.routingKey)) : undefined;
  if (routing !== undefined) meta.routing = routing;
  // Updates run no ingest pipeline; create and index do.
  if (s.pipeline !== undefined && op !== 'update') meta.pipeline = s.pipeline;
  const action = JSON.stringify({ [op]: meta });
  const doc = toJson(documentOf(entry, s));
  const source =
    s.writeOperation === 'upsert'
      ? `{"doc":${doc},"doc_as_upsert":true}`
      : s.writeOperation === 'update'
        ? `{"doc":${doc}}`
        : doc;
  return { entry, op, action, source, bytes: Buffer.byteLength(action) + Buffer.byteLength(source) + 2 };
}

/**
 * The `_id` that makes retries idempotent: SHA-256 over the tag, then the entry's canonical
 * msgpack encoding (EventTime with its nanoseconds, then the record), cut to 160 bits and
 * written base64url (27 characters). Canonical, not the bytes as received: the buffer
 * re-encodes the entries it retries, and decode → encode reaches a fixed point after one
 * round, so a first try and every retry hash the same bytes. Identical records with the same
 * tag and time become one document — which is the point.
 */
export function documentId(entry: TaggedEntry): string {
  return createHash('sha256')
    .update(entry.tag)
    .update('\0')
    .update(encodeEntry({ time: entry.time, record: entry.record }))
    .digest()
    .subarray(0, 20)
    .toString('base64url');
}

/** The event time as `time_key` holds it: RFC 3339 UTC with nine fractional digits, or `time_key_format`. */
export function formatTime(time: EventTime, format: string | undefined): string {
  return format === undefined ? time.toIso() : strftime(format, time);
}

/** The document as indexed. The entry's record is never modified: the buffer may retry it. */
function documentOf(entry: TaggedEntry, s: EncodeSettings): LogRecord {
  let doc: LogRecord = entry.record;
  for (const path of s.removeKeys) doc = withoutPath(doc, path);
  doc = { ...doc };
  if (s.includeTagKey) doc[s.tagKey] = entry.tag;
  // A record that brings its own time field (a sender's @timestamp) keeps it, as in Fluentd.
  if (!(s.timeKey in doc)) doc[s.timeKey] = formatTime(entry.time, s.timeKeyFormat);
  return s.replaceDots ? (replaceDots(doc) as LogRecord) : doc;
}

/** `record` without the value at `path`, copying only the maps on the way there. */

function replaceDots(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(replaceDots);
  if (!isLogRecord(value)) return value;
  // fromEntries defines own properties: a `__proto__` key stays a key.
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key.replaceAll('.', '_'), replaceDots(inner)]),
  );
}

/** A string or number usable as an _id or routing value; anything else counts as absent. */
function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}
