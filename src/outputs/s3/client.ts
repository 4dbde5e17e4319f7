import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { AwsConfig } from '../../aws/config.ts';
import { credentialsFor } from '../../aws/credentials.ts';

/**
 * The SDK side of the S3 output. This module (and with it ~the whole AWS SDK) is imported
 * only when an `s3` output starts, so configs without one never load it.
 */

export interface ObjectUpload {
  bucket: string;
  key: string;
  body: Buffer;
  contentType: string;
  contentEncoding: string | undefined;
}

export interface UploaderOptions {
  aws: AwsConfig;
  region: string;
  /** Larger bodies go up as a multipart upload in parts of this size. */
  partSize: number;
  usePutObject: boolean;
}

export class S3Uploader {
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly usePutObject: boolean;

  constructor(options: UploaderOptions) {
    const { aws, region } = options;
    this.partSize = options.partSize;
    this.usePutObject = options.usePutObject;
    const checksum = aws.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
    this.client = new S3Client({
      region,
      ...(aws.endpoint === undefined ? {} : { endpoint: aws.endpoint }),
      forcePathStyle: aws.force_path_style,
      credentials: credentialsFor(aws, region),
      requestChecksumCalculation: checksum,
      responseChecksumValidation: checksum,
      // The sink driver owns retries and backoff: one try per write.
      maxAttempts: 1,
      requestHandler: {
        requestTimeout: aws.request_timeout,
        throwOnRequestTimeout: true,
        connectionTimeout: Math.min(aws.request_timeout, 10_000),
      },
    });
  }

  /**
   * One object. Up to the part size (or with use_put_object): one PutObject. Above it: a
   * multipart upload, which lib-storage aborts when a part or the completion fails (no
   * orphaned parts left billed); the chunk is then retried whole.
   */
  async put(object: ObjectUpload, signal: AbortSignal): Promise<void> {
    const params = {
      Bucket: object.bucket,
      Key: object.key,
      Body: object.body,
      ContentType: object.contentType,
      ...(object.contentEncoding === undefined ? {} : { ContentEncoding: object.contentEncoding }),
    };
    if (this.usePutObject || object.body.length <= this.partSize) {
      await this.client.send(new PutObjectCommand({ ...params, ContentLength: object.body.length }), {
        abortSignal: signal,
      });
      return;
    }
    const upload = new Upload({ client: this.client, params, partSize: this.partSize, queueSize: 4 });
    const onAbort = () => void upload.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      await upload.done();
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  destroy(): void {
    this.client.destroy();
  }
}
