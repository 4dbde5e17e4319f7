import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { LogRecord } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { keyPath } from '../../core/msgpack-fields.ts';
import { getPath, parseRecordPath, RECORD_ACCESSOR } from '../../core/record-path.ts';
import { strftime } from '../../core/strftime.ts';
import { bytePathUsable, findPath, scalarAt, UNSURE } from '../elasticsearch/record-fields.ts';
import { sanitize } from '../file/path-template.ts';

/**
 * Object keys from Fluent Bit's `s3_key_format` vocabulary: `$TAG`, `$TAG[n]` (the tag split on
 * any of `key_format_tag_delimiters`), `$UUID`, strftime directives of each record's time,
 * record fields in the record-accessor form (`$kubernetes['namespace_name']`, `$level`), and
 * ours, `${chunk_id}` and `${hostname}`.
 *
 * Keys are made in two steps. A record's key is resolved with the chunk's part left open, the
 * chunk's records are grouped by it, and each group — one object — is then numbered in the order
 * its first record comes in the chunk. `${chunk_id}` becomes `<chunk id>-<number>`, and `$UUID` a
 * UUID derived from the two. A sealed chunk never changes, so every try of it — on this replica
 * or another after a crash — makes the same keys and overwrites its own objects instead of
 * adding copies; and chunk ids are unique, so two replicas never meet on a key.
 */

/** The open part, left in a resolved key until the group is numbered. Never in a tag (sanitized) or a template (refused). */
const CHUNK_MARK = '\u0000';
const UUID_MARK = '\u0001';

type Token =
  | { kind: 'text'; text: string; timed: boolean }
  | { kind: 'tag' }
  | { kind: 'tag_part'; index: number }
  | { kind: 'mark'; mark: string }
  | { kind: 'hostname' }
  | FieldToken;

interface FieldToken {
  kind: 'field';
  path: string[];
  /** The path as the UTF-8 keys findPath compares; undefined when only the decoded record can tell. */
  bytes: Uint8Array[] | undefined;
}

const TOKEN = new RegExp(
  String.raw`\$TAG\[(\d+)\]|\$TAG(?!\w)|\$UUID(?!\w)|\$\{([^}]*)\}|(${RECORD_ACCESSOR})|\$`,
  'g',
);

/** The template's tokens, or why it is not a usable key format. */
function tokenize(template: string): Token[] | string {
  const tokens: Token[] = [];
  const text = (t: string) => {
    if (t !== '') tokens.push({ kind: 'text', text: t, timed: t.includes('%') });
  };
  let last = 0;
  for (const m of template.matchAll(TOKEN)) {
    text(template.slice(last, m.index));
    last = m.index + m[0].length;
    const [whole, index, inner, field] = m;
    if (index !== undefined) tokens.push({ kind: 'tag_part', index: Number(index) });
    else if (field !== undefined) {
      const path = parseRecordPath(field);
      tokens.push({ kind: 'field', path, bytes: bytePathUsable(path) ? keyPath(path) : undefined });
    } else if (whole === '$TAG') tokens.push({ kind: 'tag' });
    else if (whole === '$UUID') tokens.push({ kind: 'mark', mark: UUID_MARK });
    else if (inner === 'chunk_id') tokens.push({ kind: 'mark', mark: CHUNK_MARK });
    else if (inner === 'hostname') tokens.push({ kind: 'hostname' });
    else if (inner !== undefined)
      return `unknown placeholder \${${inner}} (known: \${chunk_id}, \${hostname})`;
    else
      return `unknown placeholder at "${template.slice(m.index, m.index + 24)}" (known: $TAG, $TAG[n], $UUID, $field, $field['sub'], \${chunk_id}, \${hostname})`;
  }
  text(template.slice(last));
  return tokens;
}

/** Why `template` cannot be a key format, or undefined when it can. */
export function checkKeyFormat(template: string): string | undefined {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x1f\x7f]/.test(template)) return 'key_format must not contain control characters';
  if (template.startsWith('/')) return 'key_format must not start with "/" (S3 keys have no leading slash)';
  const tokens = tokenize(template);
  if (typeof tokens === 'string') return tokens;
  if (!tokens.some((t) => t.kind === 'mark'))
    return (
      'key_format needs ${chunk_id} or $UUID: without one, two chunks of the same tag and hour ' +
      '(from two replicas, two flush threads, or a restart) resolve to the same key and the later ' +
      'upload overwrites the earlier one, losing its records'
    );
  return undefined;
}

export class KeyFormat {
  private readonly tokens: Token[];
  private readonly delimiters: RegExp;
  private readonly host = sanitize(hostname());
  /** Directives below the second (%L, %N): only then can two records of one second differ. */
  private readonly subSecond: boolean;
  private readonly timed: boolean;
  private readonly tagParts = new Map<string, string[]>();
  /** Record fields vary from record to record: no key is reused then, only the dates. */
  private readonly fields: boolean;
  private readonly datedCache = new Map<string, { sec: number; value: string }>();
  /** What stands for a record field the record lacks, or a `$TAG[n]` past the tag's end. */
  private readonly missing: string;
  // The last key resolved: a chunk's records mostly share a tag and a second.
  private lastTag: string | undefined;
  private lastSec = -1;
  private lastKey = '';

  /**
   * `missing` stands for an absent field or tag part: `_` in S3 keys; CloudWatch's group and
   * stream templates pass a character no name holds, to fall back to the fixed names.
   */
  constructor(template: string, tagDelimiters: string, missing = '_') {
    this.missing = missing;
    const tokens = tokenize(template);
    if (typeof tokens === 'string') throw new Error(tokens);
    this.tokens = tokens;
    this.delimiters = new RegExp(
      `[${[...tagDelimiters].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}]`,
    );
    this.subSecond = /%[LN]/.test(template);
    this.timed = tokens.some((t) => t.kind === 'text' && t.timed);
    this.fields = tokens.some((t) => t.kind === 'field');
  }

  /**
   * The key of a record of `tag` at this time, with the chunk's part still open. The record is
   * the map at `start` in `src`; `decode` gives it whole, for the rare field the bytes cannot
   * tell (a path through an array, a number key).
   */
  resolveAt(
    tag: string,
    sec: number,
    nsec: number,
    src: Uint8Array,
    start: number,
    decode: () => LogRecord,
  ): string {
    const cacheable = !this.fields && !this.subSecond;
    if (cacheable && tag === this.lastTag && (sec === this.lastSec || !this.timed)) return this.lastKey;
    let key = '';
    for (const t of this.tokens) {
      switch (t.kind) {
        case 'text':
          key += t.timed ? this.dated(t.text, sec, nsec) : t.text;
          break;
        case 'tag':
          key += this.parts(tag)[0];
          break;
        case 'tag_part': {
          const parts = this.parts(tag);
          key += parts[1 + t.index] ?? this.missing;
          break;
        }
        case 'mark':
          key += t.mark;
          break;
        case 'hostname':
          key += this.host;
          break;
        case 'field':
          key += fieldValue(t, src, start, decode, this.missing);
          break;
      }
    }
    this.lastTag = tag;
    this.lastSec = sec;
    this.lastKey = key;
    return key;
  }

  /** strftime of a text token, kept for the second: a chunk's records mostly share a few. */
  private dated(text: string, sec: number, nsec: number): string {
    if (this.subSecond) return strftime(text, new EventTime(sec, nsec));
    let bySecond = this.datedCache.get(text);
    if (!bySecond) {
      bySecond = { sec: -1, value: '' };
      this.datedCache.set(text, bySecond);
    }
    if (bySecond.sec !== sec) {
      bySecond.sec = sec;
      bySecond.value = strftime(text, new EventTime(sec, nsec));
    }
    return bySecond.value;
  }

  /** Tags come from the network: their values are made inert (no `/`, no `..`, no control characters). */
  private parts(tag: string): string[] {
    let parts = this.tagParts.get(tag);
    if (!parts) {
      parts = [sanitize(tag), ...tag.split(this.delimiters).map(sanitize)];
      if (this.tagParts.size > 10_000) this.tagParts.clear();
      this.tagParts.set(tag, parts);
    }
    return parts;
  }
}

/**
 * A record field as a key segment: strings made inert like tags (no `/`, `..` or control
 * characters), numbers and booleans as written, `missing` when the record lacks it (or holds a
 * map, an array or null there).
 */
function fieldValue(
  t: FieldToken,
  src: Uint8Array,
  start: number,
  decode: () => LogRecord,
  missing: string,
): string {
  let value: unknown;
  const at = t.bytes === undefined ? UNSURE : findPath(src, start, src.length, t.bytes);
  if (at === UNSURE) value = getPath(decode(), t.path);
  else if (at >= 0) value = scalarAt(src, at, src.length);
  if (typeof value === 'string') return sanitize(value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  return missing;
}

/** The final key of the chunk's `part`-th object, from its open key. */
export function closeKey(openKey: string, chunkId: string, part: number): string {
  let key = openKey;
  if (key.includes(CHUNK_MARK)) key = key.replaceAll(CHUNK_MARK, `${chunkId}-${part}`);
  if (key.includes(UUID_MARK)) key = key.replaceAll(UUID_MARK, stableUuid(chunkId, part));
  return key;
}

/** A UUID-shaped name fixed by the chunk and part (version 8: custom), so a retry makes it again. */
function stableUuid(chunkId: string, part: number): string {
  const h = createHash('sha256').update(`${chunkId}/${part}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
