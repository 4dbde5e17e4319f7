import { z } from 'zod';
import { duration, httpUrl, size, tlsClient } from '../../config/values.ts';
import { parseRecordPath } from '../../core/record-path.ts';
import { mappingShape } from '../../inputs/opentelemetry/config.ts';

export const LOGS_PATH = '/v1/logs';

/** The collector's OTLP/HTTP logs endpoint; a URL without a path gets `/v1/logs`. */
const endpoint = () =>
  z.string().transform((value, ctx) => {
    const url = httpUrl(value, 'http://otel-collector:4318', ctx);
    if (!url) return z.NEVER;
    if (url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', message: 'put credentials in headers or bearer_token, not in the URL' });
      return z.NEVER;
    }
    if (url.pathname === '/' || url.pathname === '') url.pathname = LOGS_PATH;
    return url.toString();
  });

/** `{ <attribute name>: <record path> }`: record fields that go into the resource. */
const resourceKeys = () =>
  z.record(z.string().min(1), z.string().min(1)).transform((map, ctx) => {
    const out: { name: string; path: string[] }[] = [];
    for (const [name, text] of Object.entries(map)) {
      try {
        out.push({ name, path: parseRecordPath(text) });
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [name], message: (err as Error).message });
        return z.NEVER;
      }
    }
    return out;
  });

/**
 * `type: opentelemetry` output: OTLP/HTTP to a collector or a vendor's endpoint. The mapping
 * keys are the input's (the same names and defaults), read back the other way.
 */
export const otlpOutputSchema = z.strictObject({
  endpoint: endpoint().default(`http://localhost:4318${LOGS_PATH}`),
  /** `protobuf` (application/x-protobuf) or `json` (OTLP/JSON). */
  encoding: z.enum(['protobuf', 'json']).default('protobuf'),
  /** The OpenTelemetry Collector's exporters compress with gzip by default; so do we. */
  compression: z.enum(['gzip', 'none']).default('gzip'),
  /** Extra HTTP headers on every request (a vendor's API key header, say). */
  headers: z.record(z.string(), z.string()).default({}),
  /** `Authorization: Bearer …`. */
  bearer_token: z.string().min(1).optional(),
  tls: tlsClient().optional(),
  /** A request without an answer by then is abandoned and retried. */
  request_timeout: duration().default(10_000),
  /** A chunk goes out as requests of at most this many bytes of protobuf (before compression). */
  batch_size: size().default(4 * 1024 * 1024),
  /** Record fields moved into the resource, e.g. `{ k8s.namespace.name: "$kubernetes['namespace_name']" }`. */
  resource_keys: resourceKeys().default([]),
  ...mappingShape,
});

export type OtlpOutputConfig = z.output<typeof otlpOutputSchema>;
