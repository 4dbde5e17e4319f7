import { defineComponent } from '../../registry.ts';
import { recordFormat } from '../aws-records/config.ts';
import { RecordEncoder } from '../aws-records/encode.ts';
import { SIMPLE } from '../aws-records/pack.ts';
import { StreamOutput } from '../aws-records/stream-output.ts';
import { firehoseSchema } from './config.ts';

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
  create: (config, deps) =>
    new StreamOutput(
      'firehose',
      config,
      {
        id: deps.id,
        logger: deps.logger,
        failed: deps.metrics.awsRecordsFailed,
        encode: { encoder: new RecordEncoder(recordFormat(config)) },
        pack: {
          maxRecordBytes: FIREHOSE_LIMITS.recordBytes,
          aggregator: config.aggregation === 'simple' ? SIMPLE : undefined,
          compression: config.compression,
          oversize: config.oversize,
          keyed: false,
          sink: 'Firehose',
        },
        maxRecords: FIREHOSE_LIMITS.records,
        maxCallBytes: FIREHOSE_LIMITS.callBytes,
        callBytes: (u) => u.data.length,
        call: `firehose ${config.delivery_stream}: PutRecordBatch`,
      },
      async (region) => {
        // The SDK is loaded only by configs that use it.
        const { FirehoseSender } = await import('./client.ts');
        return new FirehoseSender(config, config.delivery_stream, region);
      },
    ),
});
