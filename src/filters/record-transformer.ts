import { z } from 'zod';
import type { Entry, LogRecord } from '../core/entry.ts';
import { parseTime } from '../core/parse-time.ts';
import { getPath, parseRecordPath, withoutPath, withPath } from '../core/record-path.ts';
import { defineComponent } from '../registry.ts';
import { compileRegex, fieldText, rubyRegex, valid } from './checks.ts';
import type { Filter } from './filter.ts';
import { parseValueTemplate, renderValue, type ValueTemplate } from './value-template.ts';

const path = () => z.string().min(1).check(valid(parseRecordPath));
const withFields = (text: string) => parseValueTemplate(text, true);

const schema = z.strictObject({
  /** Only records whose field matches are changed; the others pass as they are. */
  condition: z
    .strictObject({
      key: path(),
      regex: rubyRegex(),
    })
    .optional(),
  /** Start from an empty record (Fluentd's renew_record), keeping `keep_keys`. */
  renew_record: z.boolean().default(false),
  keep_keys: z.array(z.string().min(1)).default([]),
  /** `old: new` — a field moved (record paths on both sides). */
  rename_keys: z.record(path(), path()).default({}),
  /** `from: to` — a field copied. */
  copy_keys: z.record(path(), path()).default({}),
  /**
   * Fields to set. String values may hold `${tag}`, `${tag_parts[N]}`, `${tag_prefix[N]}`,
   * `${tag_suffix[N]}`, `${hostname}`, `${time}` and record fields (`$kubernetes['pod_name']`,
   * `${record["kubernetes"]["pod_name"]}`); a value that is one field alone keeps its type.
   */
  record: z
    .record(z.string().min(1), z.union([z.string().check(valid(withFields)), z.number(), z.boolean()]))
    .default({}),
  /** Fields removed (record paths), after the above. */
  remove_keys: z.array(path()).default([]),
  /** Fluent Bit nest: top-level keys matching `wildcard` (`*` any run of characters) moved under `nest_under`. */
  nest: z
    .strictObject({
      wildcard: z.array(z.string().min(1)).min(1),
      nest_under: z.string().min(1),
      remove_prefix: z.string().optional(),
    })
    .optional(),
  /** Fluent Bit lift: the keys of the map `nested_under` moved to the top level. */
  lift: z.strictObject({ nested_under: z.string().min(1), add_prefix: z.string().optional() }).optional(),
  /** A field whose time becomes the record's (epoch seconds/ms/µs/ns, RFC 3339); unparsable: kept as it was. */
  renew_time_key: path().optional(),
});
type TransformerConfig = z.output<typeof schema>;

/**
 * Fluentd's record_transformer with Fluent Bit's nest/lift: fields set from templates, renamed,
 * copied, removed, nested and lifted, optionally only where a condition holds. The entry's
 * record is never changed in place (another route may hold the same entry): each step copies
 * what it changes. Templates read the record as it came in.
 */
export const recordTransformerFilter = defineComponent({
  kind: 'filter',
  type: 'record_transformer',
  schema,
  create(config, deps): Filter {
    const apply = transformer(config);
    return { id: deps.id, type: 'record_transformer', apply: (entry, tag) => apply(entry, tag) };
  },
});

/** The transformation `config` describes, as a function of an entry and its tag. */
function transformer(config: TransformerConfig): (entry: Entry, tag: string) => Entry {
  const condition = config.condition && {
    path: parseRecordPath(config.condition.key),
    regex: compileRegex(config.condition.regex),
  };
  const renames = Object.entries(config.rename_keys).map(
    ([from, to]) => [parseRecordPath(from), parseRecordPath(to)] as const,
  );
  const copies = Object.entries(config.copy_keys).map(
    ([from, to]) => [parseRecordPath(from), parseRecordPath(to)] as const,
  );
  const sets: [string, ValueTemplate | number | boolean][] = Object.entries(config.record).map(
    ([key, value]) => [key, typeof value === 'string' ? parseValueTemplate(value, true) : value],
  );
  const removals = config.remove_keys.map(parseRecordPath);
  const nestMatch = config.nest && new RegExp(`^(?:${config.nest.wildcard.map(wildcardSource).join('|')})$`);
  const timePath = config.renew_time_key === undefined ? undefined : parseRecordPath(config.renew_time_key);

  return (entry, tag) => {
    if (condition && !condition.regex.test(fieldText(getPath(entry.record, condition.path)) ?? ''))
      return entry;
    let record: LogRecord = entry.record;
    if (config.renew_record) {
      record = {};
      for (const key of config.keep_keys)
        if (Object.hasOwn(entry.record, key)) record[key] = entry.record[key];
    }
    for (const [from, to] of renames) {
      const value = getPath(record, from);
      if (value === undefined) continue;
      record = withPath(withoutPath(record, from), to, value);
    }
    for (const [from, to] of copies) {
      const value = getPath(record, from);
      if (value !== undefined) record = withPath(record, to, value); // shared: nothing changes a value in place
    }
    if (sets.length > 0) {
      if (record === entry.record) record = { ...record };
      for (const [key, value] of sets)
        record[key] = typeof value === 'object' ? renderValue(value, entry, tag) : value;
    }
    for (const path of removals) record = withoutPath(record, path);
    if (config.nest && nestMatch)
      record = nest(record, nestMatch, config.nest.nest_under, config.nest.remove_prefix);
    if (config.lift) record = lift(record, config.lift.nested_under, config.lift.add_prefix);
    let time = entry.time;
    if (timePath) time = parseTime(getPath(entry.record, timePath)) ?? time;
    return record === entry.record && time === entry.time ? entry : { ...entry, time, record };
  };
}

function wildcardSource(pattern: string): string {
  return pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
}

function nest(record: LogRecord, match: RegExp, under: string, removePrefix: string | undefined): LogRecord {
  const moved: LogRecord = {};
  const rest: LogRecord = {};
  for (const [key, value] of Object.entries(record)) {
    if (key !== under && match.test(key)) {
      const name = removePrefix && key.startsWith(removePrefix) ? key.slice(removePrefix.length) : key;
      moved[name] = value;
    } else rest[key] = value;
  }
  if (Object.keys(moved).length === 0) return record;
  const existing = rest[under];
  rest[under] =
    existing !== null && typeof existing === 'object' && !Array.isArray(existing)
      ? { ...(existing as LogRecord), ...moved }
      : moved;
  return rest;
}

function lift(record: LogRecord, under: string, addPrefix: string | undefined): LogRecord {
  const inner = record[under];
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner) || inner instanceof Uint8Array)
    return record;
  const out: LogRecord = {};
  for (const [key, value] of Object.entries(record)) if (key !== under) out[key] = value;
  for (const [key, value] of Object.entries(inner)) out[`${addPrefix ?? ''}${key}`] = value;
  return out;
}
