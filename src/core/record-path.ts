import { isLogRecord, type LogRecord } from './entry.ts';

/**
 * Fluent Bit's record accessor as it stands in a template (`$log`, `$kubernetes['labels']['app']`),
 * as a regex source to build a template's tokenizer with; parseRecordPath reads what it matches.
 */
export const RECORD_ACCESSOR = String.raw`\$[A-Za-z_]\w*(?:\[\s*(?:'[^']*'|"[^"]*"|\d+)\s*\])*`;

/**
 * A path into a nested record, in the spellings users bring from Fluentd and Fluent Bit:
 * `$.kubernetes.namespace_name`, `$['kubernetes']['namespace_name']`,
 * `$kubernetes['namespace_name']`, or a plain top-level `key` (which may itself contain dots).
 */
export function parseRecordPath(text: string): string[] {
  if (!text.startsWith('$')) return [text];
  const parts: string[] = [];
  let pos = 1;
  let m: RegExpExecArray | null;
  const rest = text;
  // `$name` (Fluent Bit) starts the path without a dot.
  const head = /^\$([^.[\]]+)/.exec(rest);
  if (head) {
    parts.push(head[1]!);
    pos = head[0].length;
  }
  const tail = /\.([^.[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[(\d+)\]/y;
  tail.lastIndex = pos;
  while (tail.lastIndex < rest.length) {
    const at = tail.lastIndex;
    m = tail.exec(rest);
    if (!m) throw new Error(`invalid record path ${JSON.stringify(text)} at character ${at + 1}`);
    parts.push(m[1] ?? m[2] ?? m[3] ?? m[4]!);
  }
  if (parts.length === 0) throw new Error(`invalid record path ${JSON.stringify(text)}`);
  return parts;
}

export function getPath(record: LogRecord, path: readonly string[]): unknown {
  let value: unknown = record;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Removes the value at `path`; returns whether something was there. Copies nothing: callers own the record. */
export function deletePath(record: LogRecord, path: readonly string[]): boolean {
  const parent = getPath(record, path.slice(0, -1));
  const key = path[path.length - 1]!;
  if (parent === null || typeof parent !== 'object' || !(key in parent)) return false;
  delete (parent as Record<string, unknown>)[key];
  return true;
}

/** A copy of `record` without the value at `path`, sharing every untouched branch; the input is not changed. */
export function withoutPath(record: LogRecord, path: readonly string[]): LogRecord {
  const [head, ...rest] = path as [string, ...string[]];
  if (!Object.hasOwn(record, head)) return record;
  if (rest.length === 0) {
    const copy = { ...record };
    delete copy[head];
    return copy;
  }
  const child = record[head];
  if (!isLogRecord(child)) return record;
  const next = withoutPath(child, rest);
  return next === child ? record : { ...record, [head]: next };
}

/** A copy of `record` with `value` at `path`, maps on the way copied (or made); the input is not changed. */
export function withPath(record: LogRecord, path: readonly string[], value: unknown): LogRecord {
  const [head, ...rest] = path as [string, ...string[]];
  if (rest.length === 0) return { ...record, [head]: value };
  const child = record[head];
  return { ...record, [head]: withPath(isLogRecord(child) ? child : {}, rest, value) };
}
