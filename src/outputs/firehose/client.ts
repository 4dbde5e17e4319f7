import { FirehoseClient, PutRecordBatchCommand } from '@aws-sdk/client-firehose';
import type { AwsConfig } from '../../aws/config.ts';
import { credentialsFor } from '../../aws/credentials.ts';
import type { RecordFailure } from '../aws-records/put.ts';

/**
 * The SDK side of the firehose output. This module (and with it the Firehose client) is
 * imported only when a `firehose` output starts, so configs without one never load it.
 */
export class FirehoseSender {
  private readonly client: FirehoseClient;

  constructor(aws: AwsConfig, region: string) {
    this.client = new FirehoseClient({
      region,
      ...(aws.endpoint === undefined ? {} : { endpoint: aws.endpoint }),
      credentials: credentialsFor(aws, region),
      // The sink driver owns retries and backoff: one try per write.
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: aws.request_timeout,
        throwOnRequestTimeout: true,
        connectionTimeout: Math.min(aws.request_timeout, 10_000),
      },
    });
  }

  /** One PutRecordBatch; each record's failure, or undefined where Firehose stored it. */
  async put(
    stream: string,
    records: readonly Uint8Array[],
    signal: AbortSignal,
  ): Promise<(RecordFailure | undefined)[]> {
    const answer = await this.client.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: stream,
        Records: records.map((Data) => ({ Data })),
      }),
      { abortSignal: signal },
    );
    const responses = answer.RequestResponses ?? [];
    // No per-record answers and none failed: all stored (a mismatch otherwise retries the call).
    if (responses.length === 0 && answer.FailedPutCount === 0) return records.map(() => undefined);
    return responses.map((r) =>
      r.ErrorCode === undefined ? undefined : { code: r.ErrorCode, message: r.ErrorMessage ?? '' },
    );
  }

  destroy(): void {
    this.client.destroy();
  }
}
