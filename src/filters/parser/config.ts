import { z } from 'zod';
import { size } from '../../config/values.ts';
import { compileOnigmo } from '../../core/onigmo.ts';
import { parseRecordPath } from '../../core/record-path.ts';
import { valid } from '../checks.ts';
import { compileStrptime, parseOffset } from './strptime.ts';
import { parseTypes } from './value-types.ts';

export const FORMATS = [
  'json',
  'regexp',
  'logfmt',
  'ltsv',
  'csv',
  'tsv',
  'cri',
  'docker',
  'nginx',
  'apache2',
  'apache_error',
  'syslog',
  'multi_format',
] as const;
export type FormatName = (typeof FORMATS)[number];

/** How one line is read: the filter's own keys, and each of multi_format's `patterns`. */
const parseKeys = {
  format: z.enum(FORMATS),
  /** regexp: a Ruby/Onigmo regular expression with named groups, `/…/imx` or bare. */
  expression: z
    .string()
    .min(1)
    .check(valid((e) => compileOnigmo(e)))
    .optional(),
  /** csv / tsv: the field names, in order (a list, or Fluentd's comma-separated string). */
  keys: z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]).optional(),
  /** csv (`,`), tsv (tab), ltsv (tab): what separates fields. */
  delimiter: z.string().min(1).optional(),
  /** ltsv: what separates a label from its value. */
  label_delimiter: z.string().min(1).optional(),
  /** syslog: which RFC (`auto` tells them apart by the `<pri>1 ` of RFC 5424). */
  message_format: z.enum(['rfc3164', 'rfc5424', 'auto']).optional(),
  /** The parsed field that holds the record time (each format has its default). */
  time_key: z.string().min(1).optional(),
  /** strptime format of time_key's value; without it, RFC 3339 or unix seconds are read. */
  time_format: z
    .string()
    .min(1)
    .check(valid((f) => compileStrptime(f)))
    .optional(),
  /** `string` (time_format), `float` or `unixtime` (seconds since the epoch). */
  time_type: z.enum(['string', 'float', 'unixtime']).optional(),
  /** Keep time_key in the record once it has become the record time. */
  time_keep: z.boolean().optional(),
  /** The zone of times whose format carries none (`+09:00`, `-0500`); UTC by default. */
  time_offset: z.string().check(valid(parseOffset)).optional(),
  /** Conversions of parsed fields: `status:integer,latency:float,ok:bool,tags:array,at:time`, or a map. */
  types: z
    .union([z.string(), z.record(z.string(), z.string())])
    .check(valid<string | Record<string, string>>(parseTypes))
    .optional(),
};

/** Keys that belong to one format only; set with another, they are a mistake worth naming. */
const ONLY: Partial<Record<keyof typeof parseKeys, readonly FormatName[]>> = {
  expression: ['regexp'],
  keys: ['csv', 'tsv'],
  delimiter: ['csv', 'tsv', 'ltsv'],
  label_delimiter: ['ltsv'],
  message_format: ['syslog'],
};

/** The expression's group names; undefined when it does not compile (its own check says why). */
function namesOf(expression: string): string[] | undefined {
  try {
    return compileOnigmo(expression).names;
  } catch {
    return undefined;
  }
}

type ParseKeys = z.output<z.ZodObject<typeof parseKeys>>;

function checkParse(c: ParseKeys, ctx: z.RefinementCtx) {
  const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
  for (const [key, formats] of Object.entries(ONLY)) {
    if (c[key as keyof ParseKeys] !== undefined && !formats.includes(c.format))
      issue(key, `${key} is for format ${formats.join(' / ')}, not ${c.format}`);
  }
  if (c.format === 'regexp' && c.expression === undefined)
    issue('expression', 'format regexp needs expression');
  if (c.format === 'regexp' && c.expression !== undefined && namesOf(c.expression)?.length === 0)
    issue('expression', 'expression has no named group (?<name>…): it would give empty records');
  if ((c.format === 'csv' || c.format === 'tsv') && c.keys === undefined)
    issue('keys', `format ${c.format} needs keys`);
  if (c.time_format !== undefined && c.time_type !== undefined && c.time_type !== 'string')
    issue('time_format', `time_format is for time_type string, not ${c.time_type}`);
}

/** One of multi_format's patterns: a format and its keys. */
const pattern = z.strictObject(parseKeys).superRefine((c, ctx) => {
  if (c.format === 'multi_format')
    ctx.addIssue({ code: 'custom', path: ['format'], message: 'multi_format patterns cannot nest' });
  checkParse(c, ctx);
});
export type PatternConfig = z.output<typeof pattern>;

export const schema = z
  .strictObject({
    /** The field to parse: a top-level key or a record path (`$.kubernetes.log`). */
    key_name: z.string().min(1).check(valid(parseRecordPath)),
    ...parseKeys,
    format: parseKeys.format.optional(),
    /** Fluent Bit's name for format (`Parser nginx`), as DESIGN.md's example writes it. */
    parser: parseKeys.format.optional(),
    /** multi_format: formats tried in order, the first that reads the line wins. */
    patterns: z.array(pattern).min(1).optional(),
    /** Keep the record's other fields next to the parsed ones (a parsed field wins a clash). */
    reserve_data: z.boolean().default(false),
    /** With reserve_data: keep key_name too (Fluent Bit's Preserve_Key). */
    preserve_key: z.boolean().optional(),
    /** With reserve_data: drop key_name (Fluentd's spelling; the default here). */
    remove_key_name_field: z.boolean().optional(),
    /** Keep the record's own time even when the line has one (Fluentd's reserve_time). */
    reserve_time: z.boolean().default(false),
    /** Prefix every parsed field's name with this. */
    inject_key_prefix: z.string().min(1).optional(),
    /** Put the parsed fields under this key instead of at the top. */
    hash_value_field: z.string().min(1).optional(),
    /** A record that does not parse is dropped (and counted) instead of passed on unchanged. */
    emit_invalid_record_to_error: z.boolean().default(false),
    /** A value longer than this is not parsed (a parse error): parse time stays bounded. */
    max_bytes: size().default(1024 * 1024),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    const format = c.format ?? c.parser;
    if (c.format !== undefined && c.parser !== undefined)
      issue('parser', 'parser is another name for format: set one');
    if (format === undefined) {
      issue('format', `required: one of ${FORMATS.join(', ')} (or parser, as Fluent Bit names it)`);
      return;
    }
    checkParse({ ...c, format }, ctx);
    if (format === 'multi_format') {
      if (c.patterns === undefined) issue('patterns', 'format multi_format needs patterns');
      // Each pattern reads its own time and types: one set here would be silently ignored.
      for (const key of [
        'time_key',
        'time_format',
        'time_type',
        'time_keep',
        'time_offset',
        'types',
      ] as const)
        if (c[key] !== undefined) issue(key, `with multi_format, ${key} goes in each of patterns`);
    }
    if (format !== 'multi_format' && c.patterns !== undefined)
      issue('patterns', `patterns is for format multi_format, not ${format}`);
    if (
      c.preserve_key !== undefined &&
      c.remove_key_name_field !== undefined &&
      c.preserve_key === c.remove_key_name_field
    )
      issue(
        'preserve_key',
        `preserve_key ${c.preserve_key} contradicts remove_key_name_field ${c.remove_key_name_field}: set one`,
      );
  });
export type ParserConfig = z.output<typeof schema>;
