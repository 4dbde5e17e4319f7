import { z } from 'zod';
import { duration, httpUrl, size, tlsClient } from '../../config/values.ts';
import { parseRecordPath } from '../../core/record-path.ts';
import { checkIndexTemplate } from './index-name.ts';

/** A record key or path (`level`, `$.kubernetes.pod_name`, `$['kubernetes']['labels']['app']`), parsed. */
const recordPath = () =>
  z.string().transform((value, ctx) => {
    try {
      return parseRecordPath(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

/** An index name template: `${tag}`, `${tag[N]}`, `${record['a']['b']}`, `${$.a.b}` and strftime. */
const indexTemplate = () =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      const problem = checkIndexTemplate(value);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    });

/**
 * `http://es:9200`, `https://user@es.example.com`, or `es-0:9200` / `es-0` (http, port 9200,
 * as Fluentd's `hosts`). A comma-separated string is a list too.
 */
const hostList = () =>
  z.union([z.string(), z.array(z.string()).min(1)]).transform((value, ctx) => {
    const items = (Array.isArray(value) ? value : value.split(','))
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const urls: string[] = [];
    for (const item of items) {
      const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(item)
        ? item
        : `http://${/:\d+$|\]:\d+$/.test(item) ? item : `${item}:9200`}`;
      if (!httpUrl(text, 'http://es:9200', ctx)) return z.NEVER;
      urls.push(text);
    }
    if (urls.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'expected at least one host' });
      return z.NEVER;
    }
    return urls;
  });

export const DEFAULT_HOST = 'http://localhost:9200';

/**
 * `type: elasticsearch`. Option names follow fluent-plugin-elasticsearch (and Fluent Bit's `es`
 * where Fluentd has none), so a Fluentd `<match>` block translates key by key.
 */
export const elasticsearchSchema = z
  .strictObject({
    // ── connection ─────────────────────────────────────────────────────────────────────
    /** `elasticsearch` (7, 8, 9) or `opensearch` (1, 2, 3): OpenSearch gets no product check and no vendored media types. */
    flavor: z.enum(['elasticsearch', 'opensearch']).default('elasticsearch'),
    /** Nodes, tried round-robin; default http://localhost:9200 unless `cloud_id` is set. */
    hosts: hostList().optional(),
    /** Elastic Cloud deployment id (instead of `hosts`); turns gzip on unless `compression` says otherwise. */
    cloud_id: z.string().min(1).optional(),
    /** Base64 `id:api_key` as Kibana shows it, sent as `Authorization: ApiKey …`. */
    api_key: z.string().min(1).optional(),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    tls: tlsClient().optional(),
    /** `gzip` compresses request bodies (Elasticsearch and OpenSearch accept gzip); default off, on for `cloud_id`. */
    compression: z.enum(['none', 'gzip']).optional(),
    /** One `_bulk` request may take this long; then the chunk is retried. */
    request_timeout: duration().default(60_000),
    /** Extra HTTP headers on every request. */
    headers: z.record(z.string(), z.string()).default({}),
    /** Discover the cluster's nodes (at start, every 5 minutes, after a connection fault). Off: behind a Service, the nodes' own addresses are often unreachable. */
    sniffing: z.boolean().default(false),
    /**
     * Send `compatible-with=N` media types (Elasticsearch's REST API compatibility). Unset: plain
     * `application/json` and `application/x-ndjson`, which Elasticsearch 7, 8 and 9 all accept.
     */
    compatibility_version: z.union([z.literal(7), z.literal(8), z.literal(9)]).optional(),
    /** Refuse a server that does not answer `X-Elastic-Product: Elasticsearch` (off for Elasticsearch < 7.14). */
    product_check: z.boolean().default(true),

    // ── where documents go ─────────────────────────────────────────────────────────────
    /** Index (or data stream) name: `${tag}`, `${tag[N]}`, `${record['k8s']['ns']}` and strftime `%Y.%m.%d` from the record's time. */
    index: indexTemplate().default('fluentd'),
    /** Index = `logstash_prefix` + `logstash_prefix_separator` + strftime(`logstash_dateformat`, record time); `index` is ignored. */
    logstash_format: z.boolean().default(false),
    logstash_prefix: indexTemplate().default('logstash'),
    logstash_prefix_separator: z.string().default('-'),
    logstash_dateformat: z.string().min(1).default('%Y.%m.%d'),
    /** Write into the data stream named by `index`: op_type `create`, `@timestamp` always set. */
    data_stream: z.boolean().default(false),
    /** Ingest pipeline run on every document. */
    pipeline: z.string().min(1).optional(),
    /** Record key whose value becomes the document's shard routing. */
    routing_key: recordPath().optional(),
    /** `false` adds `"_type": "_doc"` to every action, for clusters older than 7. */
    suppress_type_name: z.boolean().default(true),

    // ── the document ───────────────────────────────────────────────────────────────────
    /** Field that gets the event time, unless the record already has it. */
    time_key: z.string().min(1).default('@timestamp'),
    /** strftime format for `time_key` (UTC); unset: RFC 3339 with all nine fractional digits. */
    time_key_format: z.string().min(1).optional(),
    /** Add the tag to the document under `tag_key`. */
    include_tag_key: z.boolean().default(false),
    tag_key: z.string().min(1).default('tag'),
    /** Replace dots in field names with underscores (for mappings that cannot take dotted names). */
    replace_dots: z.boolean().default(false),
    /** Keys (or record paths) left out of the document; applied after `id_key` and `routing_key` are read. */
    remove_keys: z.array(recordPath()).default([]),

    // ── idempotency and operation ──────────────────────────────────────────────────────
    /** `create` (a second copy of an _id is refused, counted as delivered), `index` (overwrite), `update`, `upsert`. */
    write_operation: z.enum(['create', 'index', 'update', 'upsert']).default('create'),
    /** `_id` = hash of tag, time and record, so a retried chunk never makes a second document. */
    generate_id: z.boolean().default(true),
    /** Take `_id` from this record key instead (falls back to `generate_id` when absent). */
    id_key: recordPath().optional(),

    // ── requests ───────────────────────────────────────────────────────────────────────
    /** A chunk is sent as `_bulk` requests of at most this many bytes (below `http.max_content_length`). */
    bulk_max_bytes: size().default(10 * 1024 * 1024),
    /** … and at most this many documents each. */
    bulk_max_actions: z.number().int().min(1).default(5000),
    /** Log the first failed item of each flush with its action, document and the cluster's answer. */
    trace_error: z.boolean().default(false),

    // ── index template ─────────────────────────────────────────────────────────────────
    /** Composable index template (`PUT _index_template/<name>`) installed before the first write. */
    template_name: z.string().min(1).optional(),
    /** JSON file with the template body (relative to the config file). */
    template_file: z.string().min(1).optional(),
    /** Replace an existing template of that name (default: leave it). */
    template_overwrite: z.boolean().default(false),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    if (c.cloud_id !== undefined && c.hosts !== undefined)
      issue('cloud_id', 'set cloud_id or hosts, not both');
    if (c.cloud_id !== undefined && c.flavor === 'opensearch')
      issue('cloud_id', 'cloud_id is Elastic Cloud only');
    if (c.api_key !== undefined && c.username !== undefined)
      issue('api_key', 'set api_key or username, not both');
    if (c.username !== undefined && c.password === undefined) issue('username', 'username needs a password');
    if (c.password !== undefined && c.username === undefined) issue('password', 'password needs a username');
    if (c.compatibility_version !== undefined && c.flavor === 'opensearch')
      issue('compatibility_version', 'OpenSearch does not take Elasticsearch compatibility media types');
    if ((c.write_operation === 'update' || c.write_operation === 'upsert') && c.id_key === undefined)
      issue(
        'id_key',
        `write_operation ${c.write_operation} needs id_key: an update names the document it changes`,
      );
    if (c.data_stream) {
      if (c.logstash_format)
        issue('logstash_format', 'data streams roll over by themselves: no logstash_format');
      if (c.write_operation !== 'create')
        issue('write_operation', 'data streams only take write_operation create');
      if (c.time_key !== '@timestamp') issue('time_key', 'data streams need the time in @timestamp');
    }
    if ((c.template_name === undefined) !== (c.template_file === undefined))
      issue(
        c.template_name === undefined ? 'template_file' : 'template_name',
        'template_name and template_file go together',
      );
  });

export type ElasticsearchConfig = z.output<typeof elasticsearchSchema>;
