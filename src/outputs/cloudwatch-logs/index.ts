import { resolveRegion } from '../../aws/config.ts';
import { decodeSpans } from '../../core/entry-cursor.ts';
import { HaltError, RejectError, type WriteError } from '../../core/errors.ts';
import { type ItemAnswer, sendInRequests } from '../../delivery/request.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import { RecordEncoder } from '../aws-records/encode.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import type { CloudWatchLogsSender, RejectedEvents } from './client.ts';
import { type CloudWatchLogsConfig, cloudwatchLogsSchema } from './config.ts';
import { EmfWriter } from './emf.ts';
import { classifyCloudWatchError, errorCode } from './errors.ts';
import { encodeEvents, LIMITS, type LogEvent, type MessageWriter } from './events.ts';
import { type Destination, Destinations } from './names.ts';

const MiB = 1024 * 1024;

/** PutLogEvents calls of one write in flight at once, each to its own stream (and 24-hour window). */
const PARALLEL_STREAMS = 8;

/** Groups and streams remembered as existing; past this many the memo starts over (re-creating is harmless). */
const MAX_REMEMBERED = 10_000;

/** Amazon CloudWatch Logs: PutLogEvents per log stream, with Embedded Metric Format on request. */
export const cloudwatchLogsOutput = defineComponent({
  kind: 'output',
  type: 'cloudwatch_logs',
  schema: cloudwatchLogsSchema,
  // A chunk's JSON is about one PutLogEvents (1 MiB, 10,000 events); logs show up within seconds.
  bufferDefaults: { chunk_limit_size: MiB, chunk_limit_records: LIMITS.events, flush_interval: 1000 },
  create: (config, deps) => new CloudWatchLogsOutput(config, deps),
});

/** CloudWatch's words for the events it refused (`rejectedLogEventsInfo`), and what they mean. */
const REFUSED = {
  tooOld:
    'CloudWatch Logs refused the event (rejectedLogEventsInfo: tooOld): its time is more than 14 days before the call',
  expired:
    "CloudWatch Logs refused the event (rejectedLogEventsInfo: expired): its time is past the log group's retention",
  tooNew:
    'CloudWatch Logs refused the event (rejectedLogEventsInfo: tooNew): its time is more than 2 hours after the call',
} as const;
type Refusal = keyof typeof REFUSED;

export class CloudWatchLogsOutput implements Output {
  readonly id: string;
  readonly type = 'cloudwatch_logs';
  private readonly config: CloudWatchLogsConfig;
  private readonly logger: Logger;
  private readonly writer: MessageWriter;
  private readonly destinations: Destinations;
  private readonly rejectedMetric: Metrics['cloudwatchEventsRejected'];
  private sender: CloudWatchLogsSender | undefined;
  /**
   * Streams and groups created here or found existing, by key: the promise of that. No
   * DescribeLogStreams on the way (a few calls per second per account): a stream is created
   * once, an existing one answers ResourceAlreadyExistsException, and that is all.
   */
  private readonly streams = new Map<string, Promise<void>>();
  private readonly groups = new Map<string, Promise<void>>();
  /** Groups created here whose retention is not set yet (PutRetentionPolicy failed). */
  private readonly retentionPending = new Set<string>();

  constructor(config: CloudWatchLogsConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.logger = deps.logger;
    this.destinations = new Destinations(config);
    this.writer =
      config.log_format === 'json/emf' && config.metrics !== undefined
        ? new EmfWriter({
            namespace: config.metric_namespace ?? '',
            dimensions: config.metric_dimensions ?? [],
            metrics: config.metrics,
          })
        : new RecordEncoder({
            timeKey: undefined,
            timeKeyFormat: '',
            logKey: config.log_key,
            appendNewline: false,
            replaceDots: undefined,
          });
    this.rejectedMetric = deps.metrics.cloudwatchEventsRejected;
  }

  /** Loads the SDK and builds the client; contacts nothing, so Estuary starts while CloudWatch is unreachable. */
  async start(): Promise<void> {
    await this.open();
  }

  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    return untilAborted(this.put(chunk, options.signal), options.signal, `${this.id}: PutLogEvents`);
  }

  async stop(): Promise<void> {
    const sender = this.sender;
    this.sender = undefined;
    sender?.destroy();
  }

  private async open(): Promise<CloudWatchLogsSender> {
    if (this.sender) return this.sender;
    const region = resolveRegion(this.config);
    if (region === undefined)
      throw new HaltError(`${this.id}: no region: set \`region\` or the AWS_REGION environment variable`);
    // The SDK is loaded only by configs that use it.
    const { CloudWatchLogsSender } = await import('./client.ts');
    this.sender ??= new CloudWatchLogsSender(this.config, region, this.config.log_format === 'json/emf');
    return this.sender;
  }

  private async put(chunk: Chunk, signal: AbortSignal): Promise<WriteResult | undefined> {
    const sender = await this.open();
    const encoded = encodeEvents(chunk, {
      writer: this.writer,
      destinations: this.destinations,
      oversize: this.config.oversize,
      checkUtf8: this.config.log_key !== undefined,
    });
    if (encoded.truncated > 0)
      this.logger.warn({ chunk_id: chunk.id, events: encoded.truncated }, 'events over 1 MiB truncated');
    const { bytes } = encoded;
    return sendInRequests(
      encoded.events,
      {
        maxBytes: LIMITS.callBytes,
        maxCount: LIMITS.events,
        bytes: (e) => e.end - e.start + LIMITS.eventOverhead,
        group: (e) => e.call,
        entry: (e) => decodeSpans([e.span])[0]!,
        noun: 'event',
        // Streams are independent (no sequence tokens): a chunk of many pods' streams goes at once.
        concurrency: PARALLEL_STREAMS,
        send: (events, s) => this.send(sender, bytes, events, s),
      },
      signal,
      encoded.rejected,
    );
  }

  /** One PutLogEvents of one stream; the stream (and group) created first where allowed. */
  private async send(
    sender: CloudWatchLogsSender,
    bytes: Buffer,
    events: readonly LogEvent[],
    signal: AbortSignal,
  ): Promise<ItemAnswer[] | undefined> {
    const dest = events[0]!.dest;
    const at = `cloudwatch_logs ${dest.group} ${dest.stream}`;
    const logEvents = events.map((e) => ({
      timestamp: e.time,
      message: bytes.toString('utf8', e.start, e.end),
    }));
    let refused: RejectedEvents | undefined;
    try {
      await this.ensureStream(sender, dest, signal);
      try {
        refused = await sender.put(dest.group, dest.stream, logEvents, signal);
      } catch (err) {
        if (errorCode(err) !== 'ResourceNotFoundException' || !this.config.auto_create_stream) throw err;
        // Deleted since it was created or seen here: once more from the start.
        this.forget(dest);
        await this.ensureStream(sender, dest, signal);
        refused = await sender.put(dest.group, dest.stream, logEvents, signal);
      }
    } catch (err) {
      const error: WriteError = signal.aborted
        ? abortError(signal, at)
        : classifyCloudWatchError(err, `${at}: PutLogEvents`, 'data', this.missingHint(err, dest));
      if (error instanceof RejectError)
        this.rejectedMetric.inc({ plugin_id: this.id, reason: 'InvalidParameterException' }, events.length);
      throw error;
    }
    return refused === undefined ? undefined : this.answers(events, refused);
  }

  /** Each event's answer from `rejectedLogEventsInfo`: refused with CloudWatch's reason, or stored. */
  private answers(events: readonly LogEvent[], r: RejectedEvents): ItemAnswer[] {
    const counts: Partial<Record<Refusal, number>> = {};
    const tooOldEnd = r.tooOldEnd ?? 0;
    const expiredEnd = r.expiredEnd ?? 0;
    const tooNewStart = r.tooNewStart ?? events.length;
    const answers = events.map((_, i): ItemAnswer => {
      const refusal: Refusal | undefined =
        i < tooOldEnd ? 'tooOld' : i < expiredEnd ? 'expired' : i >= tooNewStart ? 'tooNew' : undefined;
      if (refusal === undefined) return { kind: 'ok' };
      counts[refusal] = (counts[refusal] ?? 0) + 1;
      // One reason per kind (the time is the entry's own): the dead-letter queue groups by reason.
      return { kind: 'reject', reason: REFUSED[refusal] };
    });
    // The driver logs the chunk's rejections (with the first reason); the metric keeps the kinds.
    for (const [reason, n] of Object.entries(counts))
      this.rejectedMetric.inc({ plugin_id: this.id, reason }, n);
    return answers;
  }

  /** What to do about a ResourceNotFoundException, given what this output may create. */
  private missingHint(err: unknown, dest: Destination): string | undefined {
    if (errorCode(err) !== 'ResourceNotFoundException') return undefined;
    const message = err instanceof Error ? err.message : '';
    if (/log group/i.test(message) && !this.config.auto_create_group)
      return `create the log group ${dest.group}, or set auto_create_group: true`;
    return `create the log stream ${dest.stream} in ${dest.group}, or set auto_create_stream: true`;
  }

  private forget(dest: Destination): void {
    this.streams.delete(dest.key);
    this.groups.delete(dest.group);
  }

  /** The stream exists, as far as this output knows; created (with its group, where allowed) if not. */
  private ensureStream(sender: CloudWatchLogsSender, dest: Destination, signal: AbortSignal): Promise<void> {
    if (!this.config.auto_create_stream) return Promise.resolve();
    return once(this.streams, dest.key, () => this.createStream(sender, dest, signal));
  }

  private async createStream(
    sender: CloudWatchLogsSender,
    dest: Destination,
    signal: AbortSignal,
  ): Promise<void> {
    const at = `cloudwatch_logs ${dest.group} ${dest.stream}: CreateLogStream`;
    // A group created here whose retention failed: set it before its streams get events.
    if (this.retentionPending.has(dest.group))
      await once(this.groups, dest.group, () => this.createGroup(sender, dest.group, signal));
    try {
      await sender.createStream(dest.group, dest.stream, signal);
      this.logger.info({ group: dest.group, stream: dest.stream }, 'log stream created');
      return;
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ResourceAlreadyExistsException') return;
      if (code !== 'ResourceNotFoundException' || !this.config.auto_create_group)
        throw classifyCloudWatchError(
          err,
          at,
          'setup',
          `create the log group ${dest.group}, or set auto_create_group: true`,
        );
    }
    await once(this.groups, dest.group, () => this.createGroup(sender, dest.group, signal));
    try {
      await sender.createStream(dest.group, dest.stream, signal);
      this.logger.info({ group: dest.group, stream: dest.stream }, 'log stream created');
    } catch (err) {
      if (errorCode(err) !== 'ResourceAlreadyExistsException')
        throw classifyCloudWatchError(err, at, 'setup');
    }
  }

  /** The group with the configured class, tags and retention; one that exists already is left as it is. */
  private async createGroup(sender: CloudWatchLogsSender, group: string, signal: AbortSignal): Promise<void> {
    const c = this.config;
    const days = c.log_retention_days ?? 0;
    if (!this.retentionPending.has(group)) {
      try {
        await sender.createGroup(group, { logGroupClass: c.log_group_class, tags: c.log_group_tags }, signal);
        this.logger.info({ group, retention_days: days || undefined }, 'log group created');
        if (days > 0) this.retentionPending.add(group);
      } catch (err) {
        if (errorCode(err) !== 'ResourceAlreadyExistsException')
          throw classifyCloudWatchError(err, `cloudwatch_logs ${group}: CreateLogGroup`, 'setup');
      }
    }
    if (!this.retentionPending.has(group)) return;
    try {
      await sender.putRetention(group, days, signal);
    } catch (err) {
      throw classifyCloudWatchError(err, `cloudwatch_logs ${group}: PutRetentionPolicy`, 'setup');
    }
    this.retentionPending.delete(group);
  }
}

/**
 * The promise `memo` holds for `key`, or a new one from `make`: concurrent writes to one
 * stream wait for one CreateLogStream. A failure is forgotten, so the next write tries again.
 */
function once(memo: Map<string, Promise<void>>, key: string, make: () => Promise<void>): Promise<void> {
  let p = memo.get(key);
  if (!p) {
    if (memo.size >= MAX_REMEMBERED) memo.clear();
    const made = make();
    p = made;
    memo.set(key, made);
    made.catch(() => {
      if (memo.get(key) === made) memo.delete(key);
    });
  }
  return p;
}
