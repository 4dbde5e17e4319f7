import { z } from 'zod';
import { duration, httpUrl, size, tlsClient } from '../../config/values.ts';
import { type LabelSpec, labelKey, parseLabels, recordKey } from './labels.ts';

export const PUSH_PATH = '/loki/api/v1/push';

/** Loki's endpoint; a URL without a path gets `/loki/api/v1/push`. */
const pushUrl = () =>
  z.string().transform((value, ctx) => {
    const url = httpUrl(value, 'http://loki:3100', ctx);
    if (!url) return z.NEVER;
    if (url.username !== '' || url.password !== '') {
      // A password in the URL would show in logs and in `estuary check`.
      ctx.addIssue({ code: 'custom', message: 'put credentials in username and password, not in the URL' });
      return z.NEVER;
    }
    if (url.pathname === '/' || url.pathname === '') url.pathname = PUSH_PATH;
    return url.toString();
  });

/** A list, or one comma-separated string as the Fluent Bit plugins take it. */
const keyList = <T>(parse: (text: string) => T) =>
  z.union([z.string(), z.array(z.string().min(1))]).transform((value, ctx) => {
    const items = (Array.isArray(value) ? value : value.split(','))
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const out: T[] = [];
    for (const item of items) {
      try {
        out.push(parse(item));
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }
    return out;
  });

const labelsOption = () =>
  z
    .union([z.string(), z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]))])
    .transform((value, ctx): LabelSpec[] => {
      try {
        return parseLabels(value);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });

export const DEFAULT_URL = `http://localhost:3100${PUSH_PATH}`;

/**
 * `type: loki`. Option names follow the Fluent Bit `loki` output and Grafana's Fluent Bit
 * plugin (snake_case), so their configurations translate key by key.
 */
export const lokiSchema = z
  .strictObject({
    // ── connection ─────────────────────────────────────────────────────────────────────
    /** Push endpoint; a bare `http://loki:3100` gets the path `/loki/api/v1/push`. */
    url: pushUrl().default(DEFAULT_URL),
    /** `protobuf` (snappy-compressed, what Promtail and the Grafana plugin send) or `json`. */
    encoding: z.enum(['protobuf', 'json']).default('protobuf'),
    /** `gzip` compresses JSON bodies; protobuf bodies are always snappy-compressed. */
    compression: z.enum(['none', 'gzip']).default('none'),
    /** `X-Scope-OrgID` of every request (multi-tenant Loki); unset: no header. */
    tenant_id: z.string().min(1).optional(),
    /** Record key holding each record's tenant; records without it use `tenant_id`. One request per tenant. */
    tenant_id_key: z.string().min(1).transform(recordKey).optional(),
    /** HTTP basic authentication (Fluent Bit's `http_user`, `http_passwd`; Grafana Cloud's user id and token). */
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    /** `Authorization: Bearer …`. */
    bearer_token: z.string().min(1).optional(),
    tls: tlsClient().optional(),
    /** Extra HTTP headers on every request. */
    headers: z.record(z.string(), z.string()).default({}),
    /** A push without an answer by then is abandoned and retried. */
    request_timeout: duration().default(10_000),

    // ── labels ─────────────────────────────────────────────────────────────────────────
    /** Fixed labels and `$record['paths']`: a map, `{job="fluent-bit"}` or `job=fluent-bit, $sub['stream']`. */
    labels: labelsOption().default(() => [{ name: 'job', value: 'fluent-bit' }]),
    /** Record keys whose values become labels, named after the last key part. */
    label_keys: keyList(labelKey).default([]),
    /** JSON file mapping nested record keys to label names (the Grafana plugin's `LabelMapPath`). */
    label_map_path: z.string().min(1).optional(),
    /** Labels from the `kubernetes` map of Fluent Bit's kubernetes filter: namespace, pod, container, host, pod labels. */
    auto_kubernetes_labels: z.boolean().default(false),
    /** A `tag` label with the record's tag. */
    include_tag: z.boolean().default(false),
    /** Distinct values a label may take per hour (per label name, this output); past it, new values go as structured metadata. 0: no limit. */
    max_label_values: z.number().int().min(0).default(1000),

    // ── the line ───────────────────────────────────────────────────────────────────────
    /** Record keys left out of the line. */
    remove_keys: keyList(recordKey).default([]),
    /** `json` (the record as JSON) or `key_value` (`key=value` pairs, logfmt quoting). */
    line_format: z.enum(['json', 'key_value']).default('json'),
    /** When one key remains: `true` sends its value as `line_format` writes it, `raw` a string as is. */
    drop_single_key: z.union([z.boolean(), z.literal('raw')]).default(false),
    /** Record keys sent as Loki 3 structured metadata (and left out of the line). */
    structured_metadata: keyList(labelKey).default([]),

    // ── requests ───────────────────────────────────────────────────────────────────────
    /** A chunk goes out as pushes of at most this many bytes (uncompressed protobuf). */
    batch_size: size().default(1024 * 1024),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    if (c.username !== undefined && c.password === undefined) issue('username', 'username needs a password');
    if (c.password !== undefined && c.username === undefined) issue('password', 'password needs a username');
    if (c.bearer_token !== undefined && c.username !== undefined)
      issue('bearer_token', 'set bearer_token or username, not both');
    if (c.compression === 'gzip' && c.encoding === 'protobuf')
      issue(
        'compression',
        'protobuf bodies are snappy-compressed by the push format; gzip is for encoding: json',
      );
    if (c.tenant_id !== undefined && !isTenantId(c.tenant_id))
      issue('tenant_id', `not a valid Loki tenant id: ${TENANT_RULE}`);
  });

export type LokiConfig = z.output<typeof lokiSchema>;

export const TENANT_RULE = "1 to 150 of the characters a-z A-Z 0-9 ! - _ . * ' ( ), and not . or ..";

/** Loki's tenant ids (the characters that are safe in object storage paths). */
export function isTenantId(id: string): boolean {
  return /^[a-zA-Z0-9!\-_.*'()]{1,150}$/.test(id) && id !== '.' && id !== '..';
}
