import { z } from 'zod';
import { awsFields, checkAwsConfig } from '../../aws/config.ts';
import { recordFields } from '../aws-records/config.ts';
import { KeyFormat } from '../s3/key-format.ts';

/** The retention periods CloudWatch Logs accepts (PutRetentionPolicy's `retentionInDays`). */
export const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** The units CloudWatch takes for a metric (MetricDatum's `Unit`), as EMF's MetricDefinition names them. */
export const METRIC_UNITS = [
  'Seconds',
  'Microseconds',
  'Milliseconds',
  'Bytes',
  'Kilobytes',
  'Megabytes',
  'Gigabytes',
  'Terabytes',
  'Bits',
  'Kilobits',
  'Megabits',
  'Gigabits',
  'Terabits',
  'Percent',
  'Count',
  'Bytes/Second',
  'Kilobytes/Second',
  'Megabytes/Second',
  'Gigabytes/Second',
  'Terabytes/Second',
  'Bits/Second',
  'Kilobits/Second',
  'Megabits/Second',
  'Gigabits/Second',
  'Terabits/Second',
  'Count/Second',
  'None',
] as const;

/** CloudWatch's log group name rule (CreateLogGroup's `logGroupName`). */
export const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
/** CloudWatch's log stream name rule: no `:` or `*`. */
export const STREAM_NAME = /^[^:*]{1,512}$/;

/** Why `template` cannot name a group or stream, or undefined. */
function checkNameTemplate(template: string): string | undefined {
  if (/\$UUID(?!\w)|\$\{chunk_id\}/.test(template))
    return '$UUID and ${chunk_id} change with every chunk: a group or stream per chunk is not what CloudWatch is for';
  try {
    new KeyFormat(template, '.');
  } catch (err) {
    // KeyFormat knows the S3 placeholders too; those were refused above.
    return (err as Error).message.replace(/\$UUID, |\$\{chunk_id\}, |, \$\{chunk_id\}/g, '');
  }
  return undefined;
}

const nameTemplate = () =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = checkNameTemplate(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });

/**
 * A dimension key: a top-level field of the record (EMF targets are never nested). The spec's
 * schema allows 1 to 250 characters.
 */
const dimensionKey = z.string().min(1).max(250);

/**
 * `metric_dimensions`: a list of dimension sets (each a list of keys), or Fluent Bit's string
 * form, `a,b;c` for `[[a, b], [c]]`.
 */
const dimensionSets = z
  .union([
    z.string().transform((text) =>
      text
        .split(';')
        .map((set) =>
          set
            .split(',')
            .map((k) => k.trim())
            .filter((k) => k !== ''),
        )
        .filter((set) => set.length > 0),
    ),
    z.array(z.union([z.array(dimensionKey), dimensionKey.transform((k) => [k])])),
  ])
  .pipe(
    z
      .array(z.array(dimensionKey).max(30, 'EMF takes at most 30 dimension keys in a set'))
      .min(1, 'expected at least one dimension set'),
  );

/** One metric: a top-level numeric field of the record (a name alone: no unit), its unit and resolution. */
const metric = z.preprocess(
  (value) => (typeof value === 'string' ? { name: value } : value),
  z.strictObject({
    name: z.string().min(1).max(1024),
    unit: z.enum(METRIC_UNITS).optional(),
    /** 1: a high-resolution metric (per second); 60 (CloudWatch's default): per minute. */
    storage_resolution: z.union([z.literal(1), z.literal(60)]).optional(),
  }),
);

export interface MetricSpec {
  name: string;
  unit?: string | undefined;
  storage_resolution?: 1 | 60 | undefined;
}

/**
 * `type: cloudwatch_logs`. Option names follow Fluent Bit's `cloudwatch_logs` output
 * (`log_group_name`, `log_stream_name`, `log_stream_prefix`, `log_group_template`,
 * `log_stream_template`, `auto_create_group`, `log_retention_days`, `log_group_class`,
 * `log_key`, `log_format`, `metric_namespace`, `metric_dimensions`).
 */
export const cloudwatchLogsSchema = z
  .strictObject({
    ...awsFields,
    /** The log group; with `log_group_template`, the group of records the template cannot name. */
    log_group_name: z.string().regex(GROUP_NAME, 'expected a log group name: 1-512 of a-z A-Z 0-9 . - _ / #'),
    /** The log stream; or `log_stream_prefix`. */
    log_stream_name: z
      .string()
      .regex(STREAM_NAME, 'expected a log stream name: 1-512 characters, no : or *')
      .optional(),
    /** The log stream is this prefix followed by the record's tag. */
    log_stream_prefix: z
      .string()
      .regex(/^[^:*]{1,500}$/, 'expected 1-500 characters, no : or *')
      .optional(),
    /**
     * The group per record: `$TAG`, `$TAG[n]` (the tag split on `.`), record fields
     * (`$kubernetes['namespace_name']`), strftime directives of the record's time. A record
     * lacking a field it names goes to `log_group_name`.
     */
    log_group_template: nameTemplate().optional(),
    /** The stream per record, as `log_group_template`; falls back to `log_stream_name` / `log_stream_prefix`. */
    log_stream_template: nameTemplate().optional(),
    /** Create a missing log group (with `log_retention_days`, `log_group_class`, `log_group_tags`). */
    auto_create_group: z.boolean().default(false),
    /** Create a missing log stream; false: a missing stream halts the output until it exists. */
    auto_create_stream: z.boolean().default(true),
    /** Retention set on the groups Estuary creates; 0 or unset: never expire. */
    log_retention_days: z
      .number()
      .int()
      .refine(
        (days) => days === 0 || (RETENTION_DAYS as readonly number[]).includes(days),
        `expected one of CloudWatch's retention periods: ${RETENTION_DAYS.join(', ')} (or 0: never expire)`,
      )
      .optional(),
    /** Class of the groups Estuary creates: `STANDARD`, or `INFREQUENT_ACCESS` (cheaper, fewer features). */
    log_group_class: z.enum(['STANDARD', 'INFREQUENT_ACCESS']).optional(),
    /** Tags of the groups Estuary creates (at most 50). */
    log_group_tags: z
      .record(z.string().min(1).max(128), z.string().max(256))
      .refine((tags) => Object.keys(tags).length <= 50, 'CloudWatch takes at most 50 tags per log group')
      .optional(),
    log_key: recordFields.log_key,
    /** An event over CloudWatch's 1 MiB: `reject` (dead-letter it) or `truncate` (cut, marked `[truncated]`). */
    oversize: recordFields.oversize,
    /**
     * `json` (default): the record as JSON. `json/emf`: CloudWatch Embedded Metric Format — each
     * record with the fields in `metrics` gets an `_aws` block naming them, and CloudWatch makes
     * them metrics; a record that has its own `_aws` is sent as it is.
     */
    log_format: z.enum(['json', 'json/emf']).default('json'),
    /** The CloudWatch namespace of the metrics (`json/emf`). */
    metric_namespace: z
      .string()
      .min(1)
      .max(255)
      .refine((ns) => !ns.startsWith('AWS/'), 'the AWS/ namespaces are reserved for AWS services')
      .optional(),
    /** Dimension sets: lists of top-level record keys (`[[level], [level, service]]`, or `level;level,service`). */
    metric_dimensions: dimensionSets.optional(),
    /** Top-level numeric fields that become metrics: `count`, or `{ name: latency_ms, unit: Milliseconds }`. */
    metrics: z.array(metric).min(1).max(100, 'EMF takes at most 100 metrics per document').optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    checkAwsConfig(c, issue);
    if ((c.log_stream_name === undefined) === (c.log_stream_prefix === undefined))
      issue(
        'log_stream_name',
        'set one of log_stream_name and log_stream_prefix (with log_stream_template, the stream of records it cannot name)',
      );
    if (!c.auto_create_group) {
      const only = 'is set only on a group Estuary creates: add auto_create_group: true';
      if (c.log_retention_days) issue('log_retention_days', `log_retention_days ${only}`);
      if (c.log_group_class !== undefined) issue('log_group_class', `log_group_class ${only}`);
      if (c.log_group_tags !== undefined) issue('log_group_tags', `log_group_tags ${only}`);
    }
    if (c.log_format === 'json/emf') {
      if (c.log_key !== undefined)
        issue(
          'log_key',
          'log_format json/emf sends the record as a JSON object: log_key sends one field of it',
        );
      if (c.metrics !== undefined && c.metric_namespace === undefined)
        issue('metric_namespace', 'metrics go in a namespace: set metric_namespace');
      if (c.log_group_class === 'INFREQUENT_ACCESS')
        issue('log_group_class', 'Infrequent Access log groups extract no metrics from EMF: use STANDARD');
    } else {
      for (const key of ['metric_namespace', 'metric_dimensions', 'metrics'] as const)
        if (c[key] !== undefined) issue(key, `${key} goes with log_format: json/emf`);
    }
    if (c.metric_dimensions !== undefined && c.metrics === undefined)
      issue('metric_dimensions', 'metric_dimensions goes with metrics (the fields that become metrics)');
  });

export type CloudWatchLogsConfig = z.output<typeof cloudwatchLogsSchema>;
