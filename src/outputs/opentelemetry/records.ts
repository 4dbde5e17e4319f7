import type { TaggedEntry } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { getPath, withoutPath } from '../../core/record-path.ts';
import {
  type AnyValue,
  emptyLogRecord,
  isKvList,
  type KvList,
  type OtlpLogRecord,
  type OtlpScope,
  setKey,
} from '../../inputs/opentelemetry/otlp.ts';
import { KEYS, type RecordKeys } from '../../inputs/opentelemetry/records.ts';

/**
 * A record → an OTLP log record, its resource and its scope: the inverse of the input's
 * toRecord (inputs/opentelemetry/records.ts), so what came in over OTLP goes out as it came.
 * A record from elsewhere (forward, HTTP) becomes a log record whose body is the record.
 */
export interface Mapped {
  record: OtlpLogRecord;
  resource: KvList;
  scope: OtlpScope;
}

/** Record fields moved into the resource's attributes: attribute name → record path. */
export type ResourceKeys = readonly { name: string; path: readonly string[] }[];

export function fromRecord(entry: TaggedEntry, keys: RecordKeys, resourceKeys: ResourceKeys): Mapped {
  let source = entry.record;
  const resource: KvList = {};
  // Configured record fields first: a value the record's own resource map holds wins.
  for (const { name, path } of resourceKeys) {
    const value = getPath(source, path);
    if (value === undefined) continue;
    setKey(resource, name, toAnyValue(value));
    source = withoutPath(source, path);
  }
  const rest: KvList = {};
  const out = emptyLogRecord();
  const scope: OtlpScope = { name: '', version: '', attributes: {} };
  for (const key of Object.keys(source)) {
    const value = source[key];
    if (key === keys.attributesKey && isMap(value)) out.attributes = toKvList(value);
    else if (keys.resourcePrefix === undefined && key === keys.resourceKey && isMap(value))
      Object.assign(resource, toKvList(value));
    else if (
      keys.resourcePrefix !== undefined &&
      key.startsWith(keys.resourcePrefix) &&
      key !== keys.resourcePrefix
    )
      setKey(resource, key.slice(keys.resourcePrefix.length), toAnyValue(value));
    else if (keys.scopePrefix === undefined && key === keys.scopeKey && isMap(value)) readScope(value, scope);
    else if (keys.scopePrefix !== undefined && key.startsWith(keys.scopePrefix) && key !== keys.scopePrefix)
      scopeField(scope, key.slice(keys.scopePrefix.length), value);
    else if (!fixedField(out, key, value)) setKey(rest, key, toAnyValue(value));
  }
  const restKeys = Object.keys(rest);
  if (restKeys.length === 1 && restKeys[0] === keys.logKey) out.body = rest[keys.logKey]!;
  else if (restKeys.length > 0) out.body = rest;
  out.timeUnixNano = unixNano(entry.time);
  out.observedTimeUnixNano = out.timeUnixNano;
  return { record: out, resource, scope };
}

/** severity, ids, flags and event name, when the value is one OTLP can hold; else false (it stays in the body). */
function fixedField(out: OtlpLogRecord, key: string, value: unknown): boolean {
  switch (key) {
    case KEYS.severityText:
      if (typeof value !== 'string') return false;
      out.severityText = value;
      return true;
    case KEYS.severityNumber:
      if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 24) return false;
      out.severityNumber = value as number;
      return true;
    case KEYS.traceId:
      return hexField(value, 16, (id) => {
        out.traceId = id;
      });
    case KEYS.spanId:
      return hexField(value, 8, (id) => {
        out.spanId = id;
      });
    case KEYS.flags:
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 0xffff_ffff) return false;
      out.flags = value as number;
      return true;
    case KEYS.eventName:
      if (typeof value !== 'string') return false;
      out.eventName = value;
      return true;
    default:
      return false;
  }
}

function hexField(value: unknown, bytes: number, set: (id: Uint8Array) => void): boolean {
  if (typeof value !== 'string' || value.length !== bytes * 2 || !/^[0-9a-fA-F]+$/.test(value)) return false;
  set(Buffer.from(value, 'hex'));
  return true;
}

function readScope(value: Record<string, unknown>, scope: OtlpScope): void {
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (key === 'name' && typeof v === 'string') scope.name = v;
    else if (key === 'version' && typeof v === 'string') scope.version = v;
    else if (key === 'attributes' && isMap(v)) scope.attributes = toKvList(v);
  }
}

/** A flattened scope key: `name` and `version` are the scope's own, the rest its attributes. */
function scopeField(scope: OtlpScope, key: string, value: unknown): void {
  if (key === 'name' && typeof value === 'string') scope.name = value;
  else if (key === 'version' && typeof value === 'string') scope.version = value;
  else setKey(scope.attributes, key, toAnyValue(value));
}

function isMap(value: unknown): value is Record<string, unknown> {
  return isKvList(value as AnyValue) && !(value instanceof EventTime) && !(value instanceof Date);
}

function toKvList(map: Record<string, unknown>): KvList {
  const out: KvList = {};
  for (const key of Object.keys(map)) setKey(out, key, toAnyValue(map[key]));
  return out;
}

/** A decoded msgpack value as an AnyValue: times as RFC 3339 text, undefined as empty. */
export function toAnyValue(value: unknown): AnyValue {
  if (value === undefined || value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'number':
    case 'bigint':
      return value;
    case 'object':
      if (value instanceof Uint8Array) return value;
      if (value instanceof EventTime) return value.toIso();
      if (value instanceof Date) return value.toISOString();
      if (Array.isArray(value)) return value.map(toAnyValue);
      return toKvList(value as Record<string, unknown>);
    default:
      return String(value);
  }
}

export function unixNano(time: EventTime): bigint {
  return BigInt(time.sec) * 1_000_000_000n + BigInt(time.nsec);
}
