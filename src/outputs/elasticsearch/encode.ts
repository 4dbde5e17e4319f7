import { isLogRecord, type LogRecord, type TaggedEntry } from '../../core/entry.ts';
import type { EventTime } from '../../core/event-time.ts';
import { getPath, withoutPath } from '../../core/record-path.ts';
import { strftime } from '../../core/strftime.ts';
import { toJson } from '../../core/to-json.ts';
import type { ElasticsearchConfig } from './config.ts';
import { documentId } from './document-id.ts';
import { IndexName } from './index-name.ts';

/**
 * Records → `_bulk` NDJSON, and nothing else: no I/O, no clock, no randomness. The same
 * entries and settings always give the same bytes, which is what makes `_id`s stable across
 * retries and what the golden tests in test/outputs/elasticsearch/testdata/ check.
 *
 *   entry ─► _id (id_key | hash of tag, time, record) ─► index name (record time, tag, record)
 *         ─► document (remove_keys, tag_key, time_key, replace_dots) ─► action line + source line
 *
 * This is the decoded path: the definition of the bytes. Chunks are written by
 * bulk-encoder.ts from the entries' msgpack, which gives the same bytes and comes here for
 * the settings and records it does not cover.
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

/** One document's two NDJSON lines, without their newlines (neither has one inside). */
export interface DocumentLines {
  readonly action: string;
  readonly source: string;
}

/** The op every action of these settings is sent with. */
export function bulkOp(s: EncodeSettings): BulkOp {
  return s.writeOperation === 'upsert' ? 'update' : s.writeOperation;
}

/**
 * The decoded path: an entry's two lines, or why it cannot be a bulk action. The reference
 * the byte path (bulk-encoder.ts) must match byte for byte, and what it falls back to for
 * the records and settings it leaves alone.
 */
export function encodeItem(entry: TaggedEntry, s: EncodeSettings): DocumentLines | string {
  const op = bulkOp(s);
  const given = s.idKey ? scalarText(getPath(entry.record, s.idKey)) : undefined;
  // An update names an existing document: a generated id would name none.
  const id = given ?? (s.generateId && op !== 'update' ? documentId(entry) : undefined);
  if (op === 'update' && id === undefined) return noIdReason(s);
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
  return { action, source };
}

/** Why an update cannot be sent: it names an existing document, and the record names none. */
export function noIdReason(s: EncodeSettings): string {
  return `write_operation ${s.writeOperation} needs an _id, and the record has no ${s.idKey?.join('.') ?? 'id'}`;
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

function replaceDots(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(replaceDots);
  if (!isLogRecord(value)) return value;
  // fromEntries defines own properties: a `__proto__` key stays a key.
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => [key.replaceAll('.', '_'), replaceDots(inner)]),
  );
}

/** A string or number usable as an _id or routing value; anything else counts as absent. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}
