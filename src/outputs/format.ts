import { isUtf8 } from 'node:buffer';
import type { TaggedEntry } from '../core/entry.ts';
import { EventTime } from '../core/event-time.ts';
import type { Rejection } from './output.ts';

/**
 * Line formats shared by the `stdout` and `file` outputs. Every line ends in `\n`.
 * - `json`: `{"tag":…,"time":"<RFC 3339, 9 fractional digits>","record":{…}}` (+ `"metadata"`
 *   when Fluent Bit sent some), so the tag and the exact time survive.
 * - `record`: the record alone, for sinks that only want the payload.
 * - `fluentd`: Fluentd out_file's default `time<TAB>tag<TAB>json`, time in UTC with nanoseconds.
 */
export const FORMATS = ['json', 'record', 'fluentd'] as const;
export type Format = (typeof FORMATS)[number];

export function formatLine(format: Format, entry: TaggedEntry): string {
  switch (format) {
    case 'json': {
      const head = `{"tag":${JSON.stringify(entry.tag)},"time":"${entry.time.toIso()}","record":${toJson(entry.record)}`;
      return entry.metadata === undefined ? `${head}}\n` : `${head},"metadata":${toJson(entry.metadata)}}\n`;
    }
    case 'record':
      return `${toJson(entry.record)}\n`;
    case 'fluentd':
      return `${entry.time.toIso()}\t${entry.tag}\t${toJson(entry.record)}\n`;
  }
}

export function formatLines(format: Format, entries: readonly TaggedEntry[]): string {
  let out = '';
  for (const entry of entries) out += formatLine(format, entry);
  return out;
}

/**
 * The lines of the entries that can be written, and the entries that cannot: an encoding
 * failure (a record nested too deep for the stack, say) is the record's, and the same on
 * every try, so it is rejected alone instead of failing the chunk for good.
 */
export function formatEach(
  format: Format,
  entries: readonly TaggedEntry[],
): { text: string; rejected: Rejection[] } {
  let text = '';
  const rejected: Rejection[] = [];
  for (const entry of entries) {
    try {
      text += formatLine(format, entry);
    } catch (err) {
      rejected.push({ entry, reason: encodeFailure(err) });
    }
  }
  return { text, rejected };
}

/** The reason kept with a record no encoding could take. */
export function encodeFailure(err: unknown): string {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `cannot encode the record: ${message}`;
}

// Node 24 has JSON.rawJSON (ES2025); the es2024 lib we compile against does not declare it.
const rawJSON = (JSON as unknown as { rawJSON: (text: string) => unknown }).rawJSON;

/**
 * JSON.stringify for decoded msgpack values, which may hold what JSON cannot: BigInt (kept
 * as an exact JSON number), binary (UTF-8 text when it is valid UTF-8, else base64) and
 * nested EventTimes (RFC 3339, lossless). Never throws on such records.
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
