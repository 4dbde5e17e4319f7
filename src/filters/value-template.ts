import { hostname } from 'node:os';
import type { Entry, LogRecord } from '../core/entry.ts';
import type { EventTime } from '../core/event-time.ts';
import { getPath, parseRecordPath, RECORD_ACCESSOR } from '../core/record-path.ts';
import { fieldText } from './checks.ts';

/**
 * A record value written with placeholders, as Fluentd's record_transformer and Fluent Bit's
 * record accessor write them: `${tag}`, `${tag_parts[N]}` (negative N counts from the end),
 * `${tag_prefix[N]}`, `${tag_suffix[N]}`, `${hostname}`, `${time}` (the entry's time, RFC 3339),
 * and — where record fields are allowed — `${record["a"]["b"]}` and `$a['b']`.
 */
export type ValueTemplate = readonly Part[];

/** The parts of a value or tag template (tag-template.ts parses `$TAG`-style ones into the same). */
export type Part =
  | { kind: 'text'; text: string }
  | { kind: 'tag' }
  | { kind: 'tag_parts' | 'tag_prefix' | 'tag_suffix'; index: number }
  | { kind: 'hostname' }
  | { kind: 'time' }
  | { kind: 'field'; path: string[] }
  | { kind: 'group'; index: number };

const PLACEHOLDER = String.raw`\$\{(tag|hostname|time|(tag_parts|tag_prefix|tag_suffix)\[(-?\d+)\]|record((?:\[\s*(?:"[^"]*"|'[^']*'|\d+)\s*\])+))\}`;
const WITH_FIELDS = new RegExp(`${PLACEHOLDER}|(${RECORD_ACCESSOR})`, 'g');
const WITHOUT_FIELDS = new RegExp(PLACEHOLDER, 'g');

/** The template of `text`; `fields: false` leaves `$name` and `${record[…]}` as text (record_modifier). */
export function parseValueTemplate(text: string, fields: boolean): ValueTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(fields ? WITH_FIELDS : WITHOUT_FIELDS)) {
    const [whole, name, indexed, index, recordPath, accessor] = m;
    if (!fields && recordPath !== undefined) continue;
    if (m.index > last) parts.push({ kind: 'text', text: text.slice(last, m.index) });
    last = m.index + whole.length;
    if (indexed !== undefined) parts.push({ kind: indexed as 'tag_parts', index: Number(index) });
    else if (recordPath !== undefined) parts.push({ kind: 'field', path: parseRecordPath(`$${recordPath}`) });
    else if (accessor !== undefined) parts.push({ kind: 'field', path: parseRecordPath(accessor) });
    else parts.push({ kind: name as 'tag' | 'hostname' | 'time' });
  }
  if (last < text.length) parts.push({ kind: 'text', text: text.slice(last) });
  return parts;
}

const host = hostname();

/**
 * The value for an entry of `tag`. A template that is one record field alone gives that
 * field's value as it is (a number stays a number, a map a map); anything else is text.
 */
export function renderValue(template: ValueTemplate, entry: Entry, tag: string): unknown {
  if (template.length === 1 && template[0]!.kind === 'field') return getPath(entry.record, template[0]!.path);
  return renderText(template, tag, entry.record, entry.time);
}

/** The template as text for a record of `tag` (a missing field, tag part or regex group is empty). */
export function renderText(
  template: readonly Part[],
  tag: string,
  record: LogRecord,
  time?: EventTime,
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
      case 'hostname':
        out += host;
        break;
      case 'time':
        out += time?.toIso() ?? '';
        break;
      case 'field':
        out += fieldText(getPath(record, part.path)) ?? '';
        break;
      case 'group':
        out += match?.[part.index] ?? '';
        break;
      default: {
        const parts = tag.split('.');
        const i = part.index < 0 ? parts.length + part.index : part.index;
        if (part.kind === 'tag_parts') out += parts[i] ?? '';
        else if (part.kind === 'tag_prefix') out += parts.slice(0, i + 1).join('.');
        else out += parts.slice(i).join('.');
      }
    }
  }
  return out;
}
