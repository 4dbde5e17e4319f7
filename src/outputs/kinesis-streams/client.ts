import { KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { clientOptions, handlerOptions } from '../../aws/client-options.ts';
import type { AwsConfig } from '../../aws/config.ts';
import type { Unit } from '../aws-records/pack.ts';
import type { RecordFailure } from '../aws-records/put.ts';
import type { StreamSender } from '../aws-records/stream-output.ts';

/**
 * The SDK side of the kinesis_streams output, imported only when one starts. HTTP/1.1: the
 * Kinesis client defaults to HTTP/2 (for SubscribeToShard, which a producer never calls), and
 * emulators such as kinesalite speak only HTTP/1.1.
 */
export class KinesisSender implements StreamSender {
  private readonly client: KinesisClient;
  private readonly stream: { StreamName: string } | { StreamARN: string };

  constructor(aws: AwsConfig, stream: { StreamName: string } | { StreamARN: string }, region: string) {
    this.stream = stream;
    this.client = new KinesisClient({
      ...clientOptions(aws, region),
      requestHandler: new NodeHttpHandler(handlerOptions(aws)),
    });
  }

  /** One PutRecords; each record's failure, or undefined where Kinesis stored it. */
  async put(units: readonly Unit[], signal: AbortSignal): Promise<(RecordFailure | undefined)[]> {
    const answer = await this.client.send(
      new PutRecordsCommand({
        ...this.stream,
        Records: units.map((u) => ({ Data: u.data, PartitionKey: u.key })),
      }),
      { abortSignal: signal },
    );
    return (answer.Records ?? []).map((r) =>
      r.ErrorCode === undefined ? undefined : { code: r.ErrorCode, message: r.ErrorMessage ?? '' },
    );
  }

  destroy(): void {
    this.client.destroy();
  }
}
