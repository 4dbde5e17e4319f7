import { resolveRegion } from '../../aws/config.ts';
import { HaltError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { untilAborted } from '../abort.ts';
import { recordFormat } from '../aws-records/config.ts';
import { RecordEncoder } from '../aws-records/encode.ts';
import { classifyStreamError } from '../aws-records/errors.ts';
import { packChunk } from '../aws-records/pack.ts';
import { putInCalls, type RecordFailure } from '../aws-records/put.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import type { FirehoseSender } from './client.ts';
import { type FirehoseConfig, firehoseSchema } from './config.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** PutRecordBatch's limits: records per call, bytes per call, bytes per record (before base64). */
export const FIREHOSE_LIMITS = { records: 500, callBytes: 4 * MiB, recordBytes: 1000 * KiB } as const;

/** Amazon Kinesis Data Firehose: PutRecordBatch, retrying exactly the records Firehose did not store. */
export const firehoseOutput = defineComponent({
  kind: 'output',
  type: 'firehose',
  schema: firehoseSchema,
  // A chunk is a few calls at most; Firehose buffers for S3 itself, so a short interval costs little.
  bufferDefaults: { chunk_limit_size: 8 * MiB, flush_interval: 1000 },
  create: (config, deps) => new FirehoseOutput(config, deps),
});

export class FirehoseOutput implements Output {
  readonly id: string;
  readonly type = 'firehose';
  private readonly config: FirehoseConfig;
  private readonly logger: Logger;
  private readonly encoder: RecordEncoder;
  private readonly failedMetric: Metrics['awsRecordsFailed'];
  private sender: FirehoseSender | undefined;

  constructor(config: FirehoseConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.logger = deps.logger;
    this.encoder = new RecordEncoder(recordFormat(config));
    this.failedMetric = deps.metrics.awsRecordsFailed;
  }

  /** Loads the SDK and builds the client; contacts nothing, so Estuary starts while Firehose is unreachable. */
  async start(): Promise<void> {
    await this.open();
  }

  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    return untilAborted(
      this.put(chunk, options.signal),
      options.signal,
      `${this.id}: PutRecordBatch to ${this.config.delivery_stream}`,
    );
  }

  async stop(): Promise<void> {
    const sender = this.sender;
    this.sender = undefined;
    sender?.destroy();
  }

  private async open(): Promise<FirehoseSender> {
    if (this.sender) return this.sender;
    const region = resolveRegion(this.config);
    if (region === undefined)
      throw new HaltError(`${this.id}: no region: set \`region\` or the AWS_REGION environment variable`);
    // The SDK is loaded only by configs that use it.
    const { FirehoseSender } = await import('./client.ts');
    this.sender ??= new FirehoseSender(this.config, region);
    return this.sender;
  }

  private async put(chunk: Chunk, signal: AbortSignal): Promise<WriteResult | undefined> {
    const sender = await this.open();
    const stream = this.config.delivery_stream;
    const { units, rejected } = await packChunk(
      chunk,
      { encoder: this.encoder },
      {
        maxRecordBytes: FIREHOSE_LIMITS.recordBytes,
        aggregation: this.config.aggregation,
        compression: this.config.compression,
        oversize: this.config.oversize,
        sink: 'Firehose',
      },
    );
    const truncated = units.filter((u) => u.truncated).length;
    if (truncated > 0)
      this.logger.warn({ chunk_id: chunk.id, records: truncated }, 'records over 1,000 KiB truncated');
    const codes = new Map<string, number>();
    const result = await putInCalls(
      units,
      {
        maxRecords: FIREHOSE_LIMITS.records,
        maxBytes: FIREHOSE_LIMITS.callBytes,
        bytes: (u) => u.data.length,
        send: (call, s) =>
          sender.put(
            stream,
            call.map((u) => u.data),
            s,
          ),
        classify: (err) => classifyStreamError(err, `firehose ${stream}: PutRecordBatch`),
        failed: (f: RecordFailure) => {
          this.failedMetric.inc({ plugin_id: this.id, error_code: f.code });
          codes.set(f.code, (codes.get(f.code) ?? 0) + 1);
        },
      },
      signal,
      rejected,
    );
    if (codes.size > 0)
      this.logger.warn(
        { chunk_id: chunk.id, failed: Object.fromEntries(codes), retry: result?.retry?.length ?? 0 },
        'Firehose did not store some records; they will be retried',
      );
    return result;
  }
}
