import { type Aggregator, Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** Counters an output buffer keeps; the Fluentd-named gauges are read from them at scrape time. */
export interface OutputStatus {
  readonly id: string;
  readonly type: string;
  /** Synchronous: a backend whose sizes live elsewhere returns its last snapshot… */
  stats(): BufferStats;
  /** …and refreshes it here; called before every scrape. */
  refreshStats?(): Promise<void>;
}

export interface BufferStats {
  /** Open (staged, unsealed) chunks and their bytes. */
  stageLength: number;
  stageBytes: number;
  /** Sealed chunks waiting, retrying or being flushed, and their bytes. */
  queueLength: number;
  queueBytes: number;
  totalLimitBytes: number;
  emitCount: number;
  emitRecords: number;
  writeCount: number;
  rollbackCount: number;
  retryCount: number;
  numErrors: number;
  /** Seconds until the next retry of the oldest waiting chunk, 0 when none waits. */
  retryWait: number;
  flushTimeCount: number;
  slowFlushCount: number;
  deadLetterChunks: number;
  deadLetterRecords: number;
  /** 1 while the sink refuses every write (401, 403, missing index…) and the output holds its data. */
  halted: number;
  /** Why, while halted (the sink's words). */
  haltReason?: string;
  /**
   * For the admin status and page, not a metric: chunks this process last saw fail and set to
   * retry (the most recent few), with their next attempt and the error. Absent when none.
   */
  retrying?: readonly RetryingChunk[];
}

/** A chunk waiting on its backoff. */
export interface RetryingChunk {
  chunk: string;
  /** The failed tries counted so far. */
  attempt: number;
  /** ISO time of the next try. */
  nextAttempt: string;
  lastError: string;
}

const PLUGIN = ['plugin_id', 'type'] as const;

/** One registry's metrics as data: what a worker process sends its supervisor. */
export type MetricSnapshot = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What the in-flight gauges read at scrape time (core/inflight.ts's InflightBudget). */
export interface InflightStatus {
  readonly bytes: number;
  readonly limit: number;
}

export interface MetricsOptions {
  /**
   * The buffer sizes are the store's (Redis), the same in every worker process: workers'
   * metrics combine them with max, not sum (see cluster/supervisor.ts).
   */
  sharedBuffer?: boolean;
}

/** process_cpu_seconds_total, process_resident_memory_bytes, nodejs_eventloop_lag_*, … */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  // Gauges named `_total` that promtool rightly flags; the handle counts say little anyway.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(name);
  }
}

/**
 * Every metric Estuary exports. The `fluentd_*` names and labels are those of
 * fluent-plugin-prometheus (gauges there, so gauges here), so existing dashboards work.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly outputs = new Map<string, OutputStatus>();
  private inflight: InflightStatus | undefined;

  readonly inputRecords = new Counter({
    name: 'fluentd_input_status_num_records_total',
    help: 'Records received by an input.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly inputBytes = new Counter({
    name: 'estuary_input_bytes_total',
    help: 'Bytes of request or frame bodies received by an input (before decompression).',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly inputRequests = new Counter({
    name: 'estuary_input_requests_total',
    help: 'Requests or messages handled by an input, by result (ok, bad_request, unauthorized, too_large, backpressure, timeout, error).',
    labelNames: [...PLUGIN, 'result'],
    registers: [this.registry],
  });
  readonly ackLatency = new Histogram({
    name: 'estuary_ack_latency_seconds',
    help: 'Time from receiving a batch to acknowledging it (durable in every routed buffer).',
    labelNames: PLUGIN,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly flushDuration = new Histogram({
    name: 'estuary_flush_duration_seconds',
    help: 'Time an output took to write one chunk, by result.',
    labelNames: [...PLUGIN, 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly s3Objects = new Counter({
    name: 'estuary_s3_objects_total',
    help: 'Objects the s3 output uploaded (result="ok") or failed to (result="error"); a retried chunk uploads its objects again, under the same keys.',
    labelNames: [...PLUGIN, 'result'],
    registers: [this.registry],
  });
  readonly s3ObjectBytes = new Histogram({
    name: 'estuary_s3_object_bytes',
    help: 'Size of the objects the s3 output uploaded, compressed as stored.',
    labelNames: PLUGIN,
    buckets: [1024, 16_384, 262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864, 268_435_456],
    registers: [this.registry],
  });
  readonly awsRecordsFailed = new Counter({
    name: 'estuary_aws_records_failed_total',
    help: 'Records a firehose or kinesis_streams output sent that the stream did not store (an ErrorCode in the PutRecordBatch / PutRecords answer), by that code; they are retried through the buffer. An aggregate counts once.',
    labelNames: ['plugin_id', 'error_code'],
    registers: [this.registry],
  });
  readonly cloudwatchEventsRejected = new Counter({
    name: 'estuary_cloudwatch_events_rejected_total',
    help: 'Events CloudWatch Logs refused, dead-lettered, by its reason: tooNew, tooOld, expired (rejectedLogEventsInfo of a PutLogEvents it took) or InvalidParameterException (a call refused whole).',
    labelNames: ['plugin_id', 'reason'],
    registers: [this.registry],
  });
  readonly recordsDropped = new Counter({
    name: 'estuary_records_dropped_total',
    help: 'Records dropped, by plugin and reason (overflow, dead_letter_full, filtered, shutdown, …).',
    labelNames: [...PLUGIN, 'reason'],
    registers: [this.registry],
  });
  readonly recordsUnrouted = new Counter({
    name: 'estuary_records_unrouted_total',
    help: 'Records whose tag matched no output, dropped.',
    registers: [this.registry],
  });
  readonly filterErrors = new Counter({
    name: 'estuary_filter_errors_total',
    help: 'Records a filter threw on (they went on unchanged past it), and re-tags refused for a tag over 1024 characters.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly filterParseErrors = new Counter({
    name: 'estuary_filter_parse_errors_total',
    help: 'Records a parser filter could not parse (no match, not of the format, over max_bytes, key_name not text); they pass on unchanged unless emit_invalid_record_to_error drops them.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly recordsDelivered = new Counter({
    name: 'estuary_output_records_delivered_total',
    help: 'Records an output wrote successfully.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly forwardConnections = new Gauge({
    name: 'estuary_forward_connections',
    help: 'Open connections of a forward input.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly forwardConnectionsRefused = new Counter({
    name: 'estuary_forward_connections_refused_total',
    help: 'Connections a forward input closed at once because connection_limit was reached.',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly forwardBadFrames = new Counter({
    name: 'estuary_forward_bad_frames_total',
    help: 'Frames that closed their forward connection, by reason (malformed, too_large, too_deep, unknown_mode).',
    labelNames: [...PLUGIN, 'reason'],
    registers: [this.registry],
  });
  readonly forwardDuplicateChunks = new Counter({
    name: 'estuary_forward_duplicate_chunks_total',
    help: 'Re-sent forward chunks acked again without buffering them twice (dedupe_window).',
    labelNames: PLUGIN,
    registers: [this.registry],
  });
  readonly lokiLabelsDemoted = new Counter({
    name: 'estuary_loki_labels_demoted_total',
    help: 'Records a Loki output delivered with a label value sent as structured metadata instead, past max_label_values (by label name).',
    labelNames: ['plugin_id', 'label'],
    registers: [this.registry],
  });

  constructor(options: MetricsOptions = {}) {
    const size: Aggregator = options.sharedBuffer ? 'max' : 'sum';
    registerProcessMetrics(this.registry);
    const gauge = (
      name: string,
      help: string,
      read: (s: BufferStats) => number,
      aggregator: Aggregator = 'sum',
    ) =>
      new Gauge({
        name,
        help,
        labelNames: PLUGIN,
        aggregator,
        registers: [this.registry],
        collect: () => {
          const g = this.registry.getSingleMetric(name) as Gauge<'plugin_id' | 'type'>;
          g.reset();
          for (const out of this.outputs.values())
            g.set({ plugin_id: out.id, type: out.type }, read(out.stats()));
        },
      });
    gauge(
      'fluentd_output_status_buffer_queue_length',
      'Sealed chunks waiting to be flushed.',
      (s) => s.queueLength,
      size,
    );
    gauge(
      'fluentd_output_status_buffer_total_bytes',
      'Bytes buffered (staged and queued).',
      (s) => s.stageBytes + s.queueBytes,
      size,
    );
    gauge(
      'fluentd_output_status_buffer_stage_length',
      'Open chunks being filled.',
      (s) => s.stageLength,
      size,
    );
    gauge('fluentd_output_status_buffer_stage_byte_size', 'Bytes in open chunks.', (s) => s.stageBytes, size);
    gauge('fluentd_output_status_queue_byte_size', 'Bytes in sealed chunks.', (s) => s.queueBytes, size);
    gauge(
      'fluentd_output_status_buffer_available_space_ratio',
      'Free share of total_limit_size, in percent.',
      (s) =>
        s.totalLimitBytes > 0
          ? Math.max(0, 100 * (1 - (s.stageBytes + s.queueBytes) / s.totalLimitBytes))
          : 100,
      // The fullest: a connection stays with its worker, and a full one blocks its senders.
      'min',
    );
    gauge('fluentd_output_status_emit_count', 'Batches handed to the output buffer.', (s) => s.emitCount);
    gauge('fluentd_output_status_emit_records', 'Records handed to the output buffer.', (s) => s.emitRecords);
    gauge('fluentd_output_status_write_count', 'Chunk writes attempted.', (s) => s.writeCount);
    gauge(
      'fluentd_output_status_rollback_count',
      'Chunk writes rolled back for a retry.',
      (s) => s.rollbackCount,
    );
    gauge('fluentd_output_status_retry_count', 'Retries of failed writes.', (s) => s.retryCount);
    gauge('fluentd_output_status_num_errors', 'Failed writes (retryable or fatal).', (s) => s.numErrors);
    gauge(
      'fluentd_output_status_retry_wait',
      'Seconds until the next retry, 0 when none waits.',
      (s) => s.retryWait,
      'max',
    );
    gauge(
      'fluentd_output_status_flush_time_count',
      'Milliseconds spent writing chunks.',
      (s) => s.flushTimeCount,
    );
    gauge(
      'fluentd_output_status_slow_flush_count',
      'Writes slower than slow_flush_log_threshold.',
      (s) => s.slowFlushCount,
    );
    gauge(
      'estuary_output_halted',
      '1 while the sink refuses every write (401, 403, missing index…): the output keeps its data and probes.',
      (s) => s.halted,
      'max',
    );
    gauge(
      'estuary_dead_letter_chunks',
      'Chunks held in the dead-letter queue.',
      (s) => s.deadLetterChunks,
      size,
    );
    gauge(
      'estuary_dead_letter_records',
      'Records held in the dead-letter queue.',
      (s) => s.deadLetterRecords,
      size,
    );
    const inflightGauge = (name: string, help: string, read: (s: InflightStatus) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect: () => {
          const g = this.registry.getSingleMetric(name) as Gauge;
          if (this.inflight) g.set(read(this.inflight));
        },
      });
    inflightGauge(
      'estuary_inflight_bytes',
      'Bytes the inputs hold before the buffers have them (read, decompressed, not yet staged).',
      (s) => s.bytes,
    );
    inflightGauge('estuary_inflight_limit_bytes', 'service.max_inflight_bytes.', (s) => s.limit);
  }

  /** The process's in-flight budget, read at each scrape. */
  registerInflight(status: InflightStatus): void {
    this.inflight = status;
  }

  registerOutput(status: OutputStatus): void {
    this.outputs.set(status.id, status);
  }

  /** Brings every output's buffer sizes up to date (a backend that cannot is left as it was). */
  async refresh(): Promise<void> {
    await Promise.allSettled([...this.outputs.values()].map((o) => o.refreshStats?.()));
  }

  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }

  /** What a worker process hands its supervisor, which merges every worker's (see cluster/). */
  async snapshot(): Promise<MetricSnapshot> {
    await this.refresh();
    return this.registry.getMetricsAsJSON();
  }
}
