import type { TaggedEntry } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { keyPath } from '../../core/msgpack-fields.ts';
import { getPath, parseRecordPath } from '../../core/record-path.ts';
import { strftime } from '../../core/strftime.ts';
import { bytePathUsable, findPath, scalarAt, UNSURE } from './record-fields.ts';

type Part = TextPart | { kind: 'tag'; index: number | undefined } | RecordPart;

interface RecordPart {
  kind: 'record';
  path: string[];
  /** The path as the UTF-8 keys findPath compares; undefined when it cannot be read from bytes. */
  bytes: Uint8Array[] | undefined;
}

interface TextPart {
  kind: 'text';
  text: string;
  /** Holds strftime directives. */
  dated: boolean;
  /** Directives of whole seconds only: the last second's expansion is reused. */
  perSecond: boolean;
  lastSec?: number;
  lastValue?: string;
}

const PLACEHOLDER = /\$\{([^}]*)\}/g;
const TAG_REF = /^tag(?:\[(-?\d+)\])?$/;

/** `record['a']['b']` (Fluentd) and `$.a.b` / `$['a']` (record paths) name a record value. */
function recordRef(inner: string): string[] | undefined {
  const text = inner.startsWith('record[') ? `$${inner.slice('record'.length)}` : inner;
  if (!text.startsWith('$')) return undefined;
  try {
    return parseRecordPath(text);
  } catch {
    return undefined;
  }
}

function parse(template: string): Part[] | string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    const inner = m[1]!.trim();
    if (m.index > last) parts.push(text(template.slice(last, m.index)));
    last = m.index + m[0].length;
    const tag = TAG_REF.exec(inner);
    if (tag) {
      parts.push({ kind: 'tag', index: tag[1] === undefined ? undefined : Number(tag[1]) });
      continue;
    }
    const path = recordRef(inner);
    if (!path)
      return `unknown placeholder \${${inner}} (known: \${tag}, \${tag[N]}, \${record['key']['sub']}, \${$.key.sub})`;
    parts.push({ kind: 'record', path, bytes: bytePathUsable(path) ? keyPath(path) : undefined });
  }
  if (last < template.length) parts.push(text(template.slice(last)));
  return parts;
}

function text(value: string): TextPart {
  return { kind: 'text', text: value, dated: value.includes('%'), perSecond: !/%[LN]/.test(value) };
}

/** Entries of a chunk mostly share their second: one strftime for a run of them. */
function expand(part: TextPart, sec: number, nsec: number): string {
  if (!part.dated) return part.text;
  if (part.perSecond && part.lastSec === sec) return part.lastValue!;
  const value = strftime(part.text, new EventTime(sec, nsec));
  part.lastSec = sec;
  part.lastValue = value;
  return value;
}

/** Why `template` is not a usable index name template, or undefined when it is. */
export function checkIndexTemplate(template: string): string | undefined {
  const parts = parse(template);
  return typeof parts === 'string' ? parts : undefined;
}

// Elasticsearch refuses these in index names (and `:` is deprecated); uppercase is refused too.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are replaced too
const FORBIDDEN = /[\\/*?"<>|\s,#:\x00-\x1f]/g;

/** A value from a tag or a record, made safe to stand inside an index name. */
function inert(value: unknown): string {
  if (typeof value === 'string') return value.replace(FORBIDDEN, '_');
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    return String(value);
  return '';
}

/**
 * An index name from a template: strftime directives in the template's own text take the
 * record's time (UTC), `${tag}` / `${tag[N]}` its tag, `${record[…]}` a record value (empty
 * when missing). Substituted values cannot add separators or wildcards, and the result is
 * lowercased because Elasticsearch refuses uppercase index names.
 */
export class IndexName {
  private readonly parts: Part[];
  /** Names that depend on nothing but the tag and the second are cached for the next entry. */
  private readonly perTagAndSecond: boolean;
  private lastTag: string | undefined;
  private lastSec = -1;
  private lastName = '';

  /** `suffix` is literal text after the template (strftime still applies; placeholders do not). */
  constructor(template: string, suffix: readonly string[] = []) {
    const parts = parse(template);
    if (typeof parts === 'string') throw new Error(parts);
    this.parts = [...parts, ...suffix.map(text)];
    this.perTagAndSecond = this.parts.every((p) => p.kind === 'tag' || (p.kind === 'text' && p.perSecond));
  }

  /** `logstash_prefix` + separator + `logstash_dateformat`; only the prefix takes placeholders. */
  static logstash(prefix: string, separator: string, dateFormat: string): IndexName {
    return new IndexName(prefix, [separator, dateFormat]);
  }

  /** The name for a decoded entry. */
  resolve(entry: TaggedEntry): string {
    const { sec, nsec } = entry.time;
    let out = '';
    for (const part of this.parts) {
      if (part.kind === 'text') out += expand(part, sec, nsec);
      else if (part.kind === 'tag') out += inert(tagPart(entry.tag, part.index));
      else out += inert(getPath(entry.record, part.path));
    }
    return out.toLowerCase();
  }

  /**
   * The name for an entry still in its bytes (the record is the map at `start` in `src`), the
   * same as `resolve` gives; undefined when a placeholder's value needs the decoded record.
   */
  resolveAt(
    tag: string,
    sec: number,
    nsec: number,
    src: Uint8Array,
    start: number,
    end: number,
  ): string | undefined {
    if (this.perTagAndSecond && sec === this.lastSec && tag === this.lastTag) return this.lastName;
    let out = '';
    for (const part of this.parts) {
      if (part.kind === 'text') out += expand(part, sec, nsec);
      else if (part.kind === 'tag') out += inert(tagPart(tag, part.index));
      else {
        if (part.bytes === undefined) return undefined;
        const at = findPath(src, start, end, part.bytes);
        if (at === UNSURE) return undefined;
        if (at >= 0) out += inert(scalarAt(src, at, end));
      }
    }
    const name = out.toLowerCase();
    if (this.perTagAndSecond) {
      this.lastTag = tag;
      this.lastSec = sec;
      this.lastName = name;
    }
    return name;
  }
}

function tagPart(tag: string, index: number | undefined): string {
  if (index === undefined) return tag;
  const parts = tag.split('.');
  const i = index < 0 ? parts.length + index : index;
  return parts[i] ?? '';
}
