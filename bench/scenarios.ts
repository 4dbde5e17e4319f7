/**
 * What `npm run bench` runs: each scenario's load, buffer and sink, what Fluent Bit and
 * Fluentd run in Estuary's place for a side-by-side (bench/anchors.ts), and the Estuary
 * config a run generates.
 */

export type BufferKind = 'memory' | 'redis';
export type SinkKind = 'forward' | 'elasticsearch' | 'loki' | 's3' | 'file';

/**
 * The anchors' equivalent of a scenario: `forward` (in_forward → out_forward with acks to the
 * bench's forward sink) or `file` (in_forward → out_file, the record as JSON per line), or
 * why there is none.
 */
export type AnchorShape = 'forward' | 'file' | { none: string };

export type Load =
  | {
      kind: 'forward';
      mode: 'packed' | 'message';
      batch: number;
      /** Connections of the load generator (4 when absent). */
      connections?: number;
    }
  | { kind: 'http'; batch: number };

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
  anchor: AnchorShape;
}

const PACKED = { kind: 'forward', mode: 'packed', batch: 1000 } as const;
/** Issue 13's reference runs: 500,000 records over 2 connections. */
const ISSUE_13 = { connections: 2, records: 500_000 };
const NO_ANCHOR_HTTP = { none: 'HTTP input: not set up for the anchors' };

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
];

export interface Ports {
  forward: number;
  http: number;
  sink: number;
  admin: number;
}

/**
 * The SUT's output per sink. The file output does not fsync: neither Fluent Bit's nor
 * Fluentd's out_file does, and the side-by-side is about turning records into lines.
 */
const SINK_OUTPUTS: Record<SinkKind, (port: number, outputDir: string) => string> = {
  forward: (port) => `{ type: forward, id: sink, servers: [{ host: 127.0.0.1, port: ${port} }] }`,
  elasticsearch: (port) =>
    `{ type: elasticsearch, id: sink, hosts: ["http://127.0.0.1:${port}"], logstash_format: true, logstash_prefix: bench }`,
  loki: (port) =>
    `{ type: loki, id: sink, url: "http://127.0.0.1:${port}/loki/api/v1/push", labels: { job: bench }, include_tag: true }`,
  // The s3 output's own defaults (64MiB chunks, 5 min) would make one or two objects a run: the
  // service's 1 s and 8MiB (those of every other scenario) make dozens, each one PutObject.
  s3: (port) =>
    `{ type: s3, id: sink, bucket: bench, endpoint: "http://127.0.0.1:${port}", force_path_style: true, region: us-east-1, buffer: { chunk_limit_size: 8MiB, flush_interval: 1s } }`,
  file: (_port, outputDir) =>
    `{ type: file, id: sink, path: ${JSON.stringify(`${outputDir}/estuary.log`)}, format: record, fsync: false }`,
};

/**
 * Environment the SUT runs with, per sink: the S3 output takes its credentials from the SDK's
 * chain, of which the environment comes first (the sink does not check them) unless
 * AWS_PROFILE is set, and must never wait on an EC2 metadata service.
 */
export const SINK_ENV: Partial<Record<SinkKind, Record<string, string>>> = {
  s3: {
    AWS_ACCESS_KEY_ID: 'bench',
    AWS_SECRET_ACCESS_KEY: 'bench',
    AWS_PROFILE: '',
    AWS_EC2_METADATA_DISABLED: 'true',
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
  const input =
    scenario.load.kind === 'forward'
      ? `{ type: forward, listen: 127.0.0.1, port: ${ports.forward} }`
      : `{ type: http, listen: 127.0.0.1, port: ${ports.http} }`;
  return `service:
  log_level: warn
  workers: ${workers}
  http: { listen: 127.0.0.1, port: ${ports.admin} }
  buffer: { type: ${buffer}${redisUrl ? `, redis_url: "${redisUrl}"` : ''}, flush_interval: 1s }
inputs:
  - ${input}
outputs:
  - ${SINK_OUTPUTS[scenario.sink](ports.sink, outputDir)}
`;
}
