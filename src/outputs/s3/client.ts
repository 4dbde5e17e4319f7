import {
  type ObjectCannedACL,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
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
  body: Uint8Array;
  contentType: string;
  contentEncoding: string | undefined;
}

/** What every object of an output is stored with (each unset: the bucket's default). */
export interface ObjectSettings {
  storageClass?: string | undefined;
  serverSideEncryption?: string | undefined;
  kmsKeyId?: string | undefined;
  cannedAcl?: string | undefined;
  /** Already in the URL-query form S3 takes (`team=web&env=prod`). */
  tagging?: string | undefined;
}

export interface UploaderOptions {
  aws: AwsConfig;
  region: string;
  /** Larger bodies go up as a multipart upload in parts of this size. */
  partSize: number;
  usePutObject: boolean;
  objects: ObjectSettings;
}

export class S3Uploader {
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly usePutObject: boolean;
  private readonly settings: Partial<PutObjectCommandInput>;

  constructor(options: UploaderOptions) {
    const { aws, region, objects: o } = options;
    this.partSize = options.partSize;
    this.usePutObject = options.usePutObject;
    // The config schema checked these against S3's values; a multipart upload takes them at its creation.
    this.settings = {
      ...(o.storageClass === undefined ? {} : { StorageClass: o.storageClass as StorageClass }),
      ...(o.serverSideEncryption === undefined
        ? {}
        : { ServerSideEncryption: o.serverSideEncryption as ServerSideEncryption }),
      ...(o.kmsKeyId === undefined ? {} : { SSEKMSKeyId: o.kmsKeyId }),
      ...(o.cannedAcl === undefined ? {} : { ACL: o.cannedAcl as ObjectCannedACL }),
      ...(o.tagging === undefined ? {} : { Tagging: o.tagging }),
    };
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
      ...this.settings,
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
