import { z } from 'zod';
import { awsFields, checkAwsConfig } from '../../aws/config.ts';
import { size } from '../../config/values.ts';
import { JSON_DATE_FORMATS } from '../time-field.ts';
import { checkKeyFormat } from './key-format.ts';

const MiB = 1024 * 1024;

/** Column types `schema:` takes. `json`: any value as JSON text; `timestamp`: microseconds, UTC. */
export const PARQUET_TYPES = [
  'string',
  'json',
  'boolean',
  'int32',
  'int64',
  'float',
  'double',
  'timestamp',
] as const;
export type ParquetType = (typeof PARQUET_TYPES)[number];

/**
 * `type: s3`. Option names follow Fluent Bit's `s3` output where it has one (`bucket`,
 * `s3_key_format` → `key_format`, `upload_chunk_size`, `use_put_object`, `compression`).
 */
export const s3Schema = z
  .strictObject({
    ...awsFields,
    /** The bucket objects go to. */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3-63 of a-z 0-9 . -)'),
    /**
     * Object key: `$TAG`, `$TAG[n]`, `$UUID`, strftime directives of the records' time (UTC),
     * `${chunk_id}`, `${hostname}`, record fields. Must hold `${chunk_id}` or `$UUID`. Unset:
     * `estuary/$TAG/dt=%Y-%m-%d/%H/${chunk_id}` and the extension of the format and compression.
     */
    key_format: z
      .string()
      .min(1)
      .superRefine((value, ctx) => {
        const problem = checkKeyFormat(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** Characters `$TAG[n]` splits the tag on (each one is a delimiter). */
    key_format_tag_delimiters: z.string().min(1).default('.'),
    /**
     * `json_lines`: one record per line, as JSON; `plain`: the `log_key` field of each record
     * per line; `parquet`: columns from `schema`, or from the records' top-level keys.
     */
    format: z.enum(['json_lines', 'plain', 'parquet']).default('json_lines'),
    /**
     * Fluent Bit's `json_date_key`: each entry's time added to its record under this key (a
     * record that has the key keeps its own); `false` adds none. In parquet, a timestamp column.
     */
    json_date_key: z
      .union([z.literal(false), z.string().min(1)])
      .transform((key) => (key === 'false' ? false : key))
      .default('date'),
    /** How `json_date_key` is written in JSON: `iso8601` (microseconds), `java_sql_timestamp`, `double`, `epoch`, `epoch_ms`. */
    json_date_format: z.enum(JSON_DATE_FORMATS).default('iso8601'),
    /** Parquet columns, in order: `name: type` (string, json, boolean, int32, int64, float, double, timestamp). */
    schema: z
      .record(z.string().min(1), z.enum(PARQUET_TYPES))
      .refine((columns) => Object.keys(columns).length > 0, 'expected at least one column')
      .optional(),
    /** The field `format: plain` writes (Fluent Bit's `log_key`): a string as it is, anything else as JSON. */
    log_key: z.string().min(1).optional(),
    /**
     * Object compression: `gzip`, `zstd` or `none`; Content-Encoding says which. With parquet,
     * the file's own column compression (and `snappy` too); the object has no Content-Encoding.
     */
    compression: z.enum(['gzip', 'zstd', 'snappy', 'none']).default('gzip'),
    /** Objects larger than this go up in parts of this size (multipart upload); smaller ones in one PutObject. */
    upload_chunk_size: size()
      .refine((n) => n >= 5 * MiB && n <= 50 * MiB, 'expected 5MiB to 50MiB (S3 parts are at least 5MiB)')
      .default(5 * MiB),
    /** Always one PutObject, whatever the size (up to S3's 5GiB for one request). */
    use_put_object: z.boolean().default(false),
    /** Storage class of the objects (`STANDARD_IA`, `INTELLIGENT_TIERING`, `GLACIER_IR`…); unset: the bucket's default. */
    storage_class: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]*$/, 'expected a storage class like STANDARD_IA or INTELLIGENT_TIERING')
      .optional(),
    /** Server-side encryption: `AES256` (S3-managed keys), `aws:kms` or `aws:kms:dsse`; unset: the bucket's default. */
    server_side_encryption: z.enum(['AES256', 'aws:kms', 'aws:kms:dsse']).optional(),
    /** The KMS key (id, ARN or alias) for `aws:kms`; unset: the account's `aws/s3` key. */
    kms_key_id: z.string().min(1).optional(),
    /** A canned ACL for each object (`bucket-owner-full-control` for a bucket of another account). */
    canned_acl: z
      .enum([
        'private',
        'public-read',
        'public-read-write',
        'authenticated-read',
        'aws-exec-read',
        'bucket-owner-read',
        'bucket-owner-full-control',
      ])
      .optional(),
    /** Object tags (at most 10), for lifecycle rules and cost allocation. */
    tagging: z
      .record(z.string().min(1).max(128), z.string().max(256))
      .refine((tags) => Object.keys(tags).length <= 10, 'S3 takes at most 10 tags per object')
      .optional(),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    checkAwsConfig(c, issue);
    if (c.log_key !== undefined && c.format !== 'plain') issue('log_key', 'log_key goes with format: plain');
    if (c.schema !== undefined && c.format !== 'parquet') issue('schema', 'schema goes with format: parquet');
    if (c.compression === 'snappy' && c.format !== 'parquet')
      issue(
        'compression',
        'snappy is a parquet column compression: with json_lines or plain, use gzip or zstd',
      );
    if (c.kms_key_id !== undefined && !c.server_side_encryption?.startsWith('aws:kms'))
      issue('kms_key_id', 'kms_key_id goes with server_side_encryption aws:kms (or aws:kms:dsse)');
  });

export type S3Config = z.output<typeof s3Schema>;

const KEY_LAYOUT = 'estuary/$TAG/dt=%Y-%m-%d/%H/${chunk_id}';

/** The key `key_format` unset gives: the default layout, ending in what the object is. */
export function defaultKeyFormat(c: Pick<S3Config, 'format' | 'compression'>): string {
  if (c.format === 'parquet') return `${KEY_LAYOUT}.parquet`;
  const ext = c.format === 'plain' ? '.log' : '.json';
  return `${KEY_LAYOUT}${ext}${c.compression === 'gzip' ? '.gz' : c.compression === 'zstd' ? '.zst' : ''}`;
}
