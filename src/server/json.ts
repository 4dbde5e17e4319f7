import { EventTime } from '../core/event-time.ts';

/**
 * Records decoded from msgpack may hold binary strings and EventTimes, which JSON.stringify
 * would render as byte maps or `{sec, nsec}`; an operator reading the dead-letter queue wants
 * text. Binary becomes UTF-8 when it is valid UTF-8, base64 otherwise.
 */
export function jsonSafe(value: unknown): unknown {
  if (value instanceof EventTime) return value.toIso();
  if (value instanceof Uint8Array) return binaryText(value);
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), jsonSafe(v)]));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function binaryText(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  }
}
