import { FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import { clientOptions, handlerOptions } from '../../aws/client-options.ts';
import type { AwsConfig } from '../../aws/config.ts';
import type { Unit } from '../aws-records/pack.ts';
import type { RecordFailure } from '../aws-records/put.ts';
import type { StreamSender } from '../aws-records/stream-output.ts';

/** The SDK side of the firehose output, imported only when one starts. */
export class FirehoseSender implements StreamSender {
  private readonly client: FirehoseClient;
  private readonly stream: string;

  constructor(aws: AwsConfig, stream: string, region: string) {
    this.stream = stream;
    this.client = new FirehoseClient({ ...clientOptions(aws, region), requestHandler: handlerOptions(aws) });
  }

  /** One PutRecordBatch; each record's failure, or undefined where Firehose stored it. */
  async put(units: readonly Unit[], signal: AbortSignal): Promise<(RecordFailure | undefined)[]> {
    const answer = await this.client.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: this.stream,
        Records: units.map((u) => ({ Data: u.data })),
      }),
      { abortSignal: signal },
    );
    const responses = answer.RequestResponses ?? [];
    // No per-record answers and none failed: all stored (a mismatch otherwise retries the call).
    if (responses.length === 0 && answer.FailedPutCount === 0) return units.map(() => undefined);
    return responses.map((r) =>
      r.ErrorCode === undefined ? undefined : { code: r.ErrorCode, message: r.ErrorMessage ?? '' },
    );
  }

  destroy(): void {
    this.client.destroy();
  }
}
