import type { LogRecord } from '../core/entry.ts';
import { parseRecordPath, RECORD_ACCESSOR } from '../core/record-path.ts';
import { type Part, renderText } from './value-template.ts';

/** A tag template's parts: `$TAG`, `$TAG[n]`, `$0`…`$9` (a regex's match and groups), record fields. */
export type TagTemplate = readonly Part[];

const TOKEN = new RegExp(String.raw`\$TAG\[(\d+)\]|\$TAG(?!\w)|\$(\d)(?!\d)|(${RECORD_ACCESSOR})`, 'g');

/** A tag template's parts; throws on one that cannot make a tag. */
export function parseTagTemplate(template: string): TagTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const m of template.matchAll(TOKEN)) {
    if (m.index > last) parts.push({ kind: 'text', text: template.slice(last, m.index) });
    last = m.index + m[0].length;
    const [whole, tagIndex, group, field] = m;
    if (tagIndex !== undefined) parts.push({ kind: 'tag_parts', index: Number(tagIndex) });
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
  return renderText(template, tag, record, undefined, match);
}
