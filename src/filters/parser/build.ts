import type { EventTime } from '../../core/event-time.ts';
import { compileOnigmo } from '../../core/onigmo.ts';
import { apache2, apacheError, nginx } from './access-log.ts';
import type { PatternConfig } from './config.ts';
import { cri } from './cri.ts';
import { csv, tsv } from './csv.ts';
import type { Format, Values } from './format.ts';
import { groupsOf, setField } from './format.ts';
import { docker, json } from './json.ts';
import { logfmt } from './logfmt.ts';
import { ltsv } from './ltsv.ts';
import { parseOffset } from './strptime.ts';
import { syslog } from './syslog.ts';
import { valueTime } from './time.ts';
import { parseTypes } from './value-types.ts';

export interface Parsed {
  values: Values;
  /** The line's own time, when it has one that reads. */
  time?: EventTime;
  /** The time field's value when it did not read as a time (it stays in the record). */
  badTime?: unknown;
}

/** A line → its fields and time, or undefined when the line is not of the format. */
export type LineParser = (text: string) => Parsed | undefined;

/** What a line is read with: the filter's config, or one of multi_format's patterns. */
export type ParseConfig = PatternConfig & { patterns?: PatternConfig[] };

const keyList = (keys: string | string[]) => (typeof keys === 'string' ? keys.split(/\s*,\s*/) : keys);

function formatOf(c: ParseConfig, offset: number): Format {
  switch (c.format) {
    case 'json':
      return json;
    case 'docker':
      return docker;
    case 'regexp': {
      const { regex, names } = compileOnigmo(c.expression!);
      return { parse: groupsOf(regex, names), time: { key: 'time', keep: false } };
    }
    case 'logfmt':
      return logfmt;
    case 'ltsv':
      return ltsv(c.delimiter, c.label_delimiter);
    case 'csv':
      return csv(keyList(c.keys!), c.delimiter);
    case 'tsv':
      return tsv(keyList(c.keys!), c.delimiter);
    case 'cri':
      return cri;
    case 'nginx':
      return nginx;
    case 'apache2':
      return apache2;
    case 'apache_error':
      return apacheError(offset);
    case 'syslog':
      return syslog(c.message_format, offset);
    case 'multi_format':
      throw new Error('multi_format is built by buildParser');
  }
}

/**
 * A parser from its config (validated): the format's fields, the record time taken from
 * `time_key` (the format's default unless set), then `types`.
 */
export function buildParser(c: ParseConfig): LineParser {
  if (c.format === 'multi_format') {
    const each = c.patterns!.map(buildParser);
    return (text) => {
      for (const parse of each) {
        const parsed = parse(text);
        if (parsed) return parsed;
      }
      return undefined;
    };
  }
  const offset = c.time_offset === undefined ? 0 : parseOffset(c.time_offset);
  const format = formatOf(c, offset);
  const timeKey = c.time_key ?? format.time?.key;
  const custom = c.time_format !== undefined || c.time_type !== undefined;
  const readTime =
    (custom ? undefined : format.time?.read) ?? valueTime(c.time_type ?? 'string', c.time_format, offset);
  const keep = c.time_keep ?? format.time?.keep ?? false;
  const types = c.types === undefined ? undefined : [...parseTypes(c.types)];
  return (text) => {
    const values = format.parse(text);
    if (!values) return undefined;
    const parsed: Parsed = { values };
    // Own fields only: a time_key or a types name like `constructor` is not the prototype's.
    const raw = timeKey !== undefined && Object.hasOwn(values, timeKey) ? values[timeKey] : undefined;
    if (raw !== undefined && raw !== null) {
      const time = readTime(raw);
      if (time) {
        parsed.time = time;
        if (!keep) delete values[timeKey!];
      } else parsed.badTime = raw;
    }
    if (types) {
      for (const [name, convert] of types) {
        const v = Object.hasOwn(values, name) ? values[name] : undefined;
        // As Fluentd: null stays null.
        if (v !== undefined && v !== null) setField(values, name, convert(v));
      }
    }
    return parsed;
  };
}
