import { z } from 'zod';
import { duration, port, size, tlsServer } from '../../config/values.ts';
import { parseRecordPath } from '../../core/record-path.ts';
import { DEFAULT_MAX_NESTING_DEPTH, DEFAULT_MAX_RECORDS } from '../http-body.ts';
import type { RecordKeys } from './records.ts';

const MiB = 1024 * 1024;

const positive = (ms: number) =>
  duration()
    .refine((v) => v > 0, 'must be more than 0')
    .default(ms);

/**
 * Where an OTLP record's parts are in an Estuary record (records.ts): the input's keys, and
 * the opentelemetry output's, which reads them back.
 */
export const mappingShape = {
  /** Where a body that is not a map goes (a map body's keys become the record's). */
  log_key: z.string().min(1).default('log'),
  attributes_key: z.string().min(1).default('attributes'),
  /** The resource's attributes as one map under this key… */
  resource_key: z.string().min(1).default('resource'),
  /** …or flattened into the record, each key with this prefix (e.g. `resource.`). */
  resource_prefix: z.string().optional(),
  /** The scope as `{ name, version, attributes }` under this key… */
  scope_key: z.string().min(1).default('scope'),
  /** …or flattened: `<prefix>name`, `<prefix>version`, `<prefix><attribute>`. */
  scope_prefix: z.string().optional(),
};

/** The mapping's keys from a config holding mappingShape. */
export function recordKeys(c: z.output<z.ZodObject<typeof mappingShape>>): RecordKeys {
  return {
    logKey: c.log_key,
    attributesKey: c.attributes_key,
    resourceKey: c.resource_key,
    resourcePrefix: c.resource_prefix,
    scopeKey: c.scope_key,
    scopePrefix: c.scope_prefix,
  };
}

/**
 * `type: opentelemetry`: OTLP/HTTP and OTLP/gRPC logs. The limits and timeouts are the HTTP
 * input's, with the same defaults and meaning.
 */
export const otlpInputSchema = z.strictObject({
  /** All interfaces: in Kubernetes the Service, not the bind address, decides who reaches us. */
  listen: z.string().default('0.0.0.0'),
  /** OTLP/HTTP's well-known port. */
  port: port().default(4318),
  /** OTLP/gRPC's well-known port. */
  grpc_port: port().default(4317),
  /** Which listeners run; each is optional. */
  protocols: z
    .array(z.enum(['http', 'grpc']))
    .min(1)
    .default(['http', 'grpc']),
  /** The tag of every record, unless tag_key finds one. */
  tag: z.string().min(1).default('otlp.logs'),
  /** A record field whose string value is the tag (e.g. `$resource['service.name']`); `tag` when absent. */
  tag_key: z
    .string()
    .min(1)
    .transform((text, ctx) => {
      try {
        return parseRecordPath(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
  ...mappingShape,
  /** Accepted bearer tokens (HTTP `Authorization`, gRPC `authorization` metadata); empty: none asked. */
  auth_tokens: z.array(z.string()).default([]),
  /** A larger body (HTTP) or message (gRPC) is refused: 413 / RESOURCE_EXHAUSTED. */
  max_body_size: size().default(32 * MiB),
  /** Largest body once gzip is undone; default 4 × max_body_size. */
  max_decompressed_size: size().optional(),
  /** A log record whose encoded record is larger is refused alone (partial_success), the rest taken. */
  max_record_size: size().default(1 * MiB),
  /** Deepest nesting of arrays and maps in one value (body, attribute); deeper is a 400. */
  max_nesting_depth: z.number().int().min(4).max(10_000).default(DEFAULT_MAX_NESTING_DEPTH),
  /** Most log records in one request; more is a 413. */
  max_records: z.number().int().min(1).default(DEFAULT_MAX_RECORDS),
  header_timeout: positive(10_000),
  body_timeout: positive(30_000),
  request_timeout: positive(120_000),
  idle_timeout: positive(72_000),
  /** TLS on both listeners; files relative to the config file's directory. */
  tls: tlsServer().optional(),
});

export type OtlpInputConfig = z.output<typeof otlpInputSchema>;
