import type { LogRecord } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { isKvList, type KvList, type OtlpLogRecord, type OtlpScope, setKey } from './otlp.ts';

/**
 * Where an OTLP log record's parts go in an Estuary record, and back: the input maps with
 * toRecord, the opentelemetry output with fromRecord's inverse (outputs/opentelemetry), so
 * OTLP → Estuary → OTLP gives the same attributes, severity, ids, resource, scope and time.
 *
 *   body (a map)            its keys, at the top of the record
 *   body (anything else)    log_key (default `log`)
 *   attributes              attributes_key (default `attributes`), a map
 *   severity_text / _number severity_text, severity_number
 *   trace_id, span_id       hex strings; flags as trace_flags, event_name as event_name
 *   resource attributes     resource_key (a map), or each as <resource_prefix><name>
 *   scope                   scope_key: { name, version, attributes }, or <scope_prefix>name,
 *                           <scope_prefix>version and <scope_prefix><attribute>
 *   time_unix_nano          the entry's time, to the nanosecond (else observed_time_unix_nano)
 */
export interface RecordKeys {
  logKey: string;
  attributesKey: string;
  resourceKey: string;
  /** Flattens the resource's attributes into the record with this prefix instead of resourceKey. */
  resourcePrefix: string | undefined;
  scopeKey: string;
  scopePrefix: string | undefined;
}

/** The fixed keys of the mapping, the same both ways. */
export const KEYS = {
  severityText: 'severity_text',
  severityNumber: 'severity_number',
  traceId: 'trace_id',
  spanId: 'span_id',
  flags: 'trace_flags',
  eventName: 'event_name',
} as const;

export function toRecord(
  rec: OtlpLogRecord,
  resource: KvList,
  scope: OtlpScope,
  keys: RecordKeys,
): LogRecord {
  const record: KvList = {};
  const body = rec.body;
  if (isKvList(body)) for (const key of Object.keys(body)) setKey(record, key, body[key]!);
  else if (body !== undefined) setKey(record, keys.logKey, body);
  if (Object.keys(rec.attributes).length > 0) setKey(record, keys.attributesKey, rec.attributes);
  if (rec.severityText !== '') record[KEYS.severityText] = rec.severityText;
  if (rec.severityNumber !== 0) record[KEYS.severityNumber] = rec.severityNumber;
  if (rec.traceId.length > 0) record[KEYS.traceId] = hex(rec.traceId);
  if (rec.spanId.length > 0) record[KEYS.spanId] = hex(rec.spanId);
  if (rec.flags !== 0) record[KEYS.flags] = rec.flags;
  if (rec.eventName !== '') record[KEYS.eventName] = rec.eventName;
  if (keys.resourcePrefix !== undefined) {
    for (const key of Object.keys(resource)) setKey(record, keys.resourcePrefix + key, resource[key]!);
  } else if (Object.keys(resource).length > 0) setKey(record, keys.resourceKey, resource);
  if (keys.scopePrefix !== undefined) {
    const p = keys.scopePrefix;
    if (scope.name !== '') setKey(record, `${p}name`, scope.name);
    if (scope.version !== '') setKey(record, `${p}version`, scope.version);
    for (const key of Object.keys(scope.attributes)) setKey(record, p + key, scope.attributes[key]!);
  } else if (scope.name !== '' || scope.version !== '' || Object.keys(scope.attributes).length > 0) {
    const s: KvList = {};
    if (scope.name !== '') s.name = scope.name;
    if (scope.version !== '') s.version = scope.version;
    if (Object.keys(scope.attributes).length > 0) s.attributes = scope.attributes;
    setKey(record, keys.scopeKey, s);
  }
  return record;
}

/** time_unix_nano, else observed_time_unix_nano, else `now` (the spec's "unknown" is 0). */
export function recordTime(rec: OtlpLogRecord, now: () => EventTime): EventTime {
  const ns = rec.timeUnixNano !== 0n ? rec.timeUnixNano : rec.observedTimeUnixNano;
  if (ns === 0n) return now();
  const sec = ns / 1_000_000_000n;
  // EventTime's seconds are 32 bits on the wire (forward's ext type 0): later than 2106 is not a time.
  if (sec > 0xffff_ffffn) return now();
  return new EventTime(Number(sec), Number(ns % 1_000_000_000n));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
