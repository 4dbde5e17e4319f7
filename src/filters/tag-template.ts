import type { LogRecord } from '../core/entry.ts';
import { getPath, parseRecordPath, RECORD_ACCESSOR } from '../core/record-path.ts';
import { fieldText } from './checks.ts';

/** A tag template's parts: `$TAG`, `$TAG[n]`, `$0`…`$9` (a regex's match and groups), record fields. */
export type TagTemplate = readonly Part[];

type Part =
  | { kind: 'text'; text: string }
  | { kind: 'tag' }
  | { kind: 'tag_part'; index: number }
  | { kind: 'group'; index: number }
  | { kind: 'field'; path: string[] };

const TOKEN = new RegExp(String.raw`\$TAG\[(\d+)\]|\$TAG(?!\w)|\$(\d)(?!\d)|(${RECORD_ACCESSOR})`, 'g');

/** A tag template's parts; throws on one that cannot make a tag. */
export function parseTagTemplate(template: string): TagTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(TOKEN)) {
    if (m.index > last) parts.push({ kind: 'text', text: template.slice(last, m.index) });
    last = m.index + m[0].length;
    const [whole, tagIndex, group, field] = m;
    if (tagIndex !== undefined) parts.push({ kind: 'tag_part', index: Number(tagIndex) });
    else if (group !== undefined) parts.push({ kind: 'group', index: Number(group) });
    else if (field !== undefined) parts.push({ kind: 'field', path: parseRecordPath(field) });
    else if (whole === '$TAG') parts.push({ kind: 'tag' });
  }
  if (last < template.length) parts.push({ kind: 'text', text: template.slice(last) });
  return parts;
}

/** The tag `template` makes for a record of `tag` (a missing field or group is empty). */
export function buildTag(
  template: TagTemplate,
  tag: string,
  record: LogRecord,
  match?: RegExpExecArray,
): string {
  let out = '';
  for (const part of template) {
    switch (part.kind) {
      case 'text':
        out += part.text;
        break;
      case 'tag':
        out += tag;
        break;
      case 'tag_part':
        out += tag.split('.')[part.index] ?? '';
        break;
      case 'group':
        out += match?.[part.index] ?? '';
        break;
      case 'field':
        out += fieldText(getPath(record, part.path)) ?? '';
        break;
    }
  }
  return out;
}
