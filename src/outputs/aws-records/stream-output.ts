import { type AwsConfig, resolveRegion } from '../../aws/config.ts';
import { HaltError } from '../../core/errors.ts';
import { untilAborted } from '../abort.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import { deliverChunk, type StreamSpec } from './deliver.ts';
import type { Unit } from './pack.ts';
import type { RecordFailure } from './put.ts';

/** The SDK side of a stream output: one batch call, and the client's release. */
export interface StreamSender {
  put(units: readonly Unit[], signal: AbortSignal): Promise<readonly (RecordFailure | undefined)[]>;
  destroy(): void;
}

/**
 * firehose and kinesis_streams: the same output around a different client. The client module
 * (and with it the SDK) is imported at start, so configs without the output never load it; it
 * contacts nothing then, so Estuary starts while the stream is unreachable.
 */
export class StreamOutput implements Output {
  readonly id: string;
  readonly type: string;
  private readonly aws: AwsConfig;
  private readonly spec: StreamSpec;
  private readonly load: (region: string) => Promise<StreamSender>;
  private sender: StreamSender | undefined;

  constructor(
    type: string,
    aws: AwsConfig,
    spec: StreamSpec,
    load: (region: string) => Promise<StreamSender>,
  ) {
    this.id = spec.id;
    this.type = type;
    this.aws = aws;
    this.spec = spec;
    this.load = load;
  }

  async start(): Promise<void> {
    await this.open();
  }

  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const { signal } = options;
    const work = this.open().then((sender) =>
      deliverChunk(chunk, this.spec, (units, s) => sender.put(units, s), signal),
    );
    return untilAborted(work, signal, this.spec.call);
  }

  async stop(): Promise<void> {
    const sender = this.sender;
    this.sender = undefined;
    sender?.destroy();
  }

  private async open(): Promise<StreamSender> {
    if (this.sender) return this.sender;
    const region = resolveRegion(this.aws);
    if (region === undefined)
      throw new HaltError(`${this.id}: no region: set \`region\` or the AWS_REGION environment variable`);
    const sender = await this.load(region);
    this.sender ??= sender;
    return this.sender;
  }
}
