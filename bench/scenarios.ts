/**
 * What `npm run bench` runs: each scenario's load, buffer and sink, what Fluent Bit and
 * Fluentd run in Estuary's place for a side-by-side (bench/anchors.ts), and the Estuary
 * config a run generates.
 */

export type BufferKind = 'memory' | 'redis';
export type SinkKind = 'forward' | 'elasticsearch' | 'loki' | 's3' | 'firehose' | 'cloudwatch' | 'file';

/**
 * The anchors' equivalent of a scenario: `forward` (in_forward → out_forward with acks to the
 * bench's forward sink), `file` (in_forward → out_file, the record as JSON per line),
 * `otlp_file` (in_opentelemetry over HTTP → out_file), `firehose` / `cloudwatch_logs` (Fluent
 * Bit's AWS outputs to the bench's fake, over TLS), or why there is none.
 */
export type AnchorShape =
  | 'forward'
  | 'file'
  | 'otlp_file'
  | 'firehose'
  | 'cloudwatch_logs'
  | { none: string };

export type Load =
  | {
      kind: 'forward';
      mode: 'packed' | 'message';
      batch: number;
      /** Connections of the load generator (4 when absent). */
      connections?: number;
      /**
       * `log`: each record's payload as a JSON string under `log`, as a container runtime's
       * line arrives before a parser filter reads it (bench/records.ts); `record` when absent.
       */
      payload?: 'record' | 'log';
    }
  | { kind: 'http'; batch: number }
  /**
   * OTLP/HTTP protobuf to `/v1/logs` (bench/load/otlp.ts): `batch` log records per request,
   * map bodies, on `connections` keep-alive connections (4 when absent).
   */
  | { kind: 'otlp'; batch: number; connections?: number };

export interface Scenario {
  id: number;
  name: string;
  load: Load;
  buffer: BufferKind;
  sink: SinkKind;
  /** Open-loop rates to step through (records/s); closed loop when absent. */
  rates?: number[];
  /**
   * Records per run; the duration then only caps it. A fixed amount of work is what compares
   * servers that ack before they write (Fluent Bit, Fluentd and Estuary all do with memory
   * buffers): a duration would compare how much each lets pile up.
   */
  records?: number;
  /** A parser filter before the buffer: `format: json` on `log`, `reserve_data: true` (issue 17). */
  parser?: boolean;
  /** The firehose output's `aggregation: simple` (Fluent Bit: `simple_aggregation On`). */
  aggregation?: boolean;
  anchor: AnchorShape;
}

const PACKED = { kind: 'forward', mode: 'packed', batch: 1000 } as const;
/** Issue 13's reference runs: 500,000 records over 2 connections. */
const ISSUE_13 = { connections: 2, records: 500_000 };
const NO_ANCHOR_HTTP = { none: 'HTTP input: not set up for the anchors' };
/** Issue 17: scenario 8's records as JSON strings under `log`, into the same file output. */
const JSON_IN_LOG = { ...PACKED, connections: ISSUE_13.connections, payload: 'log' } as const;

export const SCENARIOS: Scenario[] = [
  {
    id: 1,
    name: 'forward PackedForward ×1000, ack → memory → forward sink',
    load: PACKED,
    buffer: 'memory',
    sink: 'forward',
    anchor: 'forward',
  },
  {
    id: 2,
    name: 'forward PackedForward ×1000, ack → redis → forward sink',
    load: PACKED,
    buffer: 'redis',
    sink: 'forward',
    anchor: 'forward',
  },
  {
    id: 3,
    name: 'forward PackedForward ×1000, ack → redis → Elasticsearch sink (_bulk)',
    load: PACKED,
    buffer: 'redis',
    sink: 'elasticsearch',
    anchor: { none: 'Elasticsearch output: not set up for the anchors' },
  },
  {
    id: 7,
    name: 'forward PackedForward ×1000, ack → redis → Loki sink (protobuf + snappy)',
    load: PACKED,
    buffer: 'redis',
    sink: 'loki',
    anchor: { none: 'Loki output: not set up for the anchors' },
  },
  {
    id: 11,
    name: 'forward PackedForward ×1000, ack → redis → S3 sink (gzip JSON lines)',
    load: PACKED,
    buffer: 'redis',
    sink: 's3',
    anchor: { none: 'S3 output: not set up for the anchors' },
  },
  {
    id: 4,
    name: 'forward Message mode, 1 record/message, ack → memory → forward sink',
    load: { kind: 'forward', mode: 'message', batch: 1 },
    buffer: 'memory',
    sink: 'forward',
    anchor: 'forward',
  },
  {
    id: 5,
    name: 'HTTP JSON arrays ×100 → redis → forward sink',
    load: { kind: 'http', batch: 100 },
    buffer: 'redis',
    sink: 'forward',
    anchor: NO_ANCHOR_HTTP,
  },
  {
    id: 6,
    name: 'fixed rates, PackedForward → memory → forward sink',
    load: { kind: 'forward', mode: 'packed', batch: 100 },
    buffer: 'memory',
    sink: 'forward',
    rates: [100, 1000, 10_000],
    anchor: 'forward',
  },
  {
    id: 8,
    name: 'forward PackedForward ×1000, ack → memory → file (format record)',
    load: { ...PACKED, connections: ISSUE_13.connections },
    buffer: 'memory',
    sink: 'file',
    records: ISSUE_13.records,
    anchor: 'file',
  },
  {
    id: 9,
    name: 'forward PackedForward ×1000, ack → redis → file (format record)',
    load: { ...PACKED, connections: ISSUE_13.connections },
    buffer: 'redis',
    sink: 'file',
    records: ISSUE_13.records,
    anchor: 'file',
  },
  {
    id: 10,
    name: 'forward Message mode, 1 record/message, ack → memory → file (format record)',
    load: { kind: 'forward', mode: 'message', batch: 1, connections: ISSUE_13.connections },
    buffer: 'memory',
    sink: 'file',
    records: ISSUE_13.records,
    anchor: 'file',
  },
  {
    id: 12,
    name: 'forward PackedForward ×1000, ack → redis → Firehose sink (PutRecordBatch)',
    load: PACKED,
    buffer: 'redis',
    sink: 'firehose',
    anchor: 'firehose',
  },
  {
    id: 13,
    name: 'forward PackedForward ×1000, ack → redis → Firehose sink (aggregation simple)',
    load: PACKED,
    buffer: 'redis',
    sink: 'firehose',
    aggregation: true,
    anchor: 'firehose',
  },
  {
    id: 14,
    name: 'fixed rate, PackedForward ×100 → memory → CloudWatch Logs sink (PutLogEvents)',
    load: { kind: 'forward', mode: 'packed', batch: 100 },
    buffer: 'memory',
    sink: 'cloudwatch',
    rates: [10_000],
    anchor: 'cloudwatch_logs',
  },
  {
    id: 15,
    name: 'forward PackedForward ×1000, ack, JSON in log → memory → file (format record)',
    load: JSON_IN_LOG,
    buffer: 'memory',
    sink: 'file',
    records: ISSUE_13.records,
    anchor: 'file',
  },
  {
    id: 16,
    name: 'forward PackedForward ×1000, ack, JSON in log → parser (json) → memory → file (format record)',
    load: JSON_IN_LOG,
    buffer: 'memory',
    sink: 'file',
    records: ISSUE_13.records,
    parser: true,
    anchor: 'file',
  },
  {
    id: 17,
    name: 'OTLP/HTTP protobuf ×1000 → memory → file (format record)',
    load: { kind: 'otlp', batch: 1000, connections: 4 },
    buffer: 'memory',
    sink: 'file',
    records: ISSUE_13.records,
    anchor: 'otlp_file',
  },
];

export interface Ports {
  forward: number;
  http: number;
  /** The sink's address: 127.0.0.1 and a free port, but see `SinkSpec.tls`. */
  sinkHost: string;
  sink: number;
  admin: number;
}

/** The bench's AWS region, for the AWS outputs and Fluent Bit's. */
export const AWS_REGION = 'us-east-1';

/**
 * Environment of the servers in a run to an AWS sink: the AWS outputs (Estuary's and Fluent
 * Bit's) take credentials from their chain, of which the environment comes first (the sinks
 * check no signature) unless AWS_PROFILE is set, and must never wait on an EC2 metadata service.
 */
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'bench',
  AWS_SECRET_ACCESS_KEY: 'bench',
  AWS_PROFILE: '',
  AWS_EC2_METADATA_DISABLED: 'true',
};

export interface SinkSpec {
  /** Estuary's output to this sink. */
  output(ports: Ports, outputDir: string, scenario: Scenario): string;
  /** Environment of every server in the run (Estuary's, --sut's, an anchor's). */
  env?: Record<string, string>;
  /**
   * The sink speaks HTTPS only, with a self-signed certificate made for the run (Estuary trusts
   * it through NODE_EXTRA_CA_CERTS, Fluent Bit through `tls.ca_file`): Fluent Bit's AWS outputs
   * speak TLS only. `port: 443`: on that port of a loopback address of its own, since Fluent
   * Bit's kinesis_firehose takes a host for `endpoint` and always connects to 443.
   */
  tls?: { port?: number };
}

/**
 * Per sink: the SUT's output and what the run needs. The file output does not fsync: neither
 * Fluent Bit's nor Fluentd's out_file does, and the side-by-side is about turning records
 * into lines.
 */
export const SINKS: Record<SinkKind, SinkSpec> = {
  forward: {
    output: (p) => `{ type: forward, id: sink, servers: [{ host: ${p.sinkHost}, port: ${p.sink} }] }`,
  },
  elasticsearch: {
    output: (p) =>
      `{ type: elasticsearch, id: sink, hosts: ["http://${p.sinkHost}:${p.sink}"], logstash_format: true, logstash_prefix: bench }`,
  },
  loki: {
    output: (p) =>
      `{ type: loki, id: sink, url: "http://${p.sinkHost}:${p.sink}/loki/api/v1/push", labels: { job: bench }, include_tag: true }`,
  },
  // The s3 output's own defaults (64MiB chunks, 5 min) would make one or two objects a run: the
  // service's 1 s and 8MiB (those of every other scenario) make dozens, each one PutObject.
  s3: {
    output: (p) =>
      `{ type: s3, id: sink, bucket: bench, endpoint: "http://${p.sinkHost}:${p.sink}", force_path_style: true, region: ${AWS_REGION}, buffer: { chunk_limit_size: 8MiB, flush_interval: 1s } }`,
    env: AWS_ENV,
  },
  firehose: {
    output: (p, _dir, scenario) =>
      `{ type: firehose, id: sink, delivery_stream: bench, endpoint: "https://${p.sinkHost}:${p.sink}", region: ${AWS_REGION}${scenario.aggregation ? ', aggregation: simple' : ''} }`,
    env: AWS_ENV,
    tls: { port: 443 },
  },
  cloudwatch: {
    output: (p) =>
      `{ type: cloudwatch_logs, id: sink, log_group_name: bench, log_stream_name: bench, endpoint: "https://${p.sinkHost}:${p.sink}", region: ${AWS_REGION} }`,
    env: AWS_ENV,
    tls: {},
  },
  file: {
    output: (_p, outputDir) =>
      `{ type: file, id: sink, path: ${JSON.stringify(`${outputDir}/estuary.log`)}, format: record, fsync: false }`,
  },
};

export function estuaryConfig(options: {
  scenario: Scenario;
  buffer: BufferKind;
  ports: Ports;
  redisUrl: string | undefined;
  outputDir: string;
  workers: number;
}): string {
  const { scenario, buffer, ports, redisUrl, outputDir, workers } = options;
  const inputs = {
    forward: `{ type: forward, listen: 127.0.0.1, port: ${ports.forward} }`,
    http: `{ type: http, listen: 127.0.0.1, port: ${ports.http} }`,
    otlp: `{ type: opentelemetry, listen: 127.0.0.1, port: ${ports.http}, protocols: [http], tag: bench.app }`,
  };
  const input = inputs[scenario.load.kind];
  return `service:
  log_level: warn
  workers: ${workers}
  http: { listen: 127.0.0.1, port: ${ports.admin} }
  buffer: { type: ${buffer}${redisUrl ? `, redis_url: "${redisUrl}"` : ''}, flush_interval: 1s }
inputs:
  - ${input}
${scenario.parser ? `filters:\n  - { type: parser, match: "bench.**", key_name: log, format: json, reserve_data: true }\n` : ''}outputs:
  - ${SINKS[scenario.sink].output(ports, outputDir, scenario)}
`;
}
