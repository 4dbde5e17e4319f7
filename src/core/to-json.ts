import { isUtf8 } from 'node:buffer';
import { EventTime } from './event-time.ts';

// Node 24 has JSON.rawJSON (ES2025); the es2024 lib we compile against does not declare it.
const rawJSON = (JSON as unknown as { rawJSON: (text: string) => unknown }).rawJSON;

/**
 * JSON.stringify for decoded msgpack values, which may hold what JSON cannot: BigInt (kept
 * as an exact JSON number), binary (UTF-8 text when it is valid UTF-8, else base64) and
 * nested EventTimes (RFC 3339, lossless). Never throws on such records. Records still in
 * their msgpack bytes are written by `msgpack-json.ts`, which gives the same bytes.
 */
export function toJson(value: unknown): string {
  return JSON.stringify(value, replacer) ?? 'null';
}

function replacer(this: unknown, key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return rawJSON(value.toString());
  // Buffer's own toJSON already ran on `value`, so look at the original in the holder.
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) {
    const bytes = Buffer.from(original.buffer, original.byteOffset, original.byteLength);
    return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('base64');
  }
  if (original instanceof EventTime) return original.toIso();
  return value;
}
