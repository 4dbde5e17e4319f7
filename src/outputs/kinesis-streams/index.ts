import { defineComponent } from '../../registry.ts';
import { recordFormat } from '../aws-records/config.ts';
import { RecordEncoder } from '../aws-records/encode.ts';
import type { Aggregator } from '../aws-records/pack.ts';
import { StreamOutput } from '../aws-records/stream-output.ts';
import { kinesisStreamsSchema } from './config.ts';
import { kplAggregate, kplBaseCost, kplRecordCost } from './kpl.ts';
import { partitionKeyReader } from './partition-key.ts';

const MiB = 1024 * 1024;

/** PutRecords' limits: records per call, bytes per call and per record, partition keys included. */
export const KINESIS_LIMITS = { records: 500, callBytes: 5 * MiB, recordBytes: MiB } as const;

const KPL: Aggregator = { byKey: true, base: kplBaseCost, cost: kplRecordCost, build: kplAggregate };

/** Amazon Kinesis Data Streams: PutRecords, retrying exactly the records Kinesis did not store. */
export const kinesisStreamsOutput = defineComponent({
  kind: 'output',
  type: 'kinesis_streams',
  schema: kinesisStreamsSchema,
  // Consumers read a stream within seconds; a chunk is a few calls at most.
  bufferDefaults: { chunk_limit_size: 8 * MiB, flush_interval: 1000 },
  create: (config, deps) => {
    // The schema insists on one of the two.
    const stream =
      config.stream_arn === undefined ? { StreamName: config.stream! } : { StreamARN: config.stream_arn };
    return new StreamOutput(
      'kinesis_streams',
      config,
      {
        id: deps.id,
        logger: deps.logger,
        failed: deps.metrics.awsRecordsFailed,
        encode: {
          encoder: new RecordEncoder(recordFormat(config)),
          ...(config.partition_key === undefined ? {} : { key: partitionKeyReader(config.partition_key) }),
        },
        pack: {
          maxRecordBytes: KINESIS_LIMITS.recordBytes,
          aggregator: config.aggregation === 'kpl' ? KPL : undefined,
          compression: 'none',
          oversize: config.oversize,
          keyed: true,
          sink: 'Kinesis',
        },
        maxRecords: KINESIS_LIMITS.records,
        maxCallBytes: KINESIS_LIMITS.callBytes,
        callBytes: (u) => u.data.length + Buffer.byteLength(u.key),
        call: `kinesis ${config.stream ?? config.stream_arn}: PutRecords`,
      },
      async (region) => {
        // The SDK is loaded only by configs that use it.
        const { KinesisSender } = await import('./client.ts');
        return new KinesisSender(config, stream, region);
      },
    );
  },
});
