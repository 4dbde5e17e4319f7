import { z } from 'zod';
import { awsFields, checkAwsConfig } from '../../aws/config.ts';
import { checkRecordFields, recordFields } from '../aws-records/config.ts';

/**
 * `type: firehose`. Option names follow Fluent Bit's `kinesis_firehose` output (`delivery_stream`,
 * `time_key`, `time_key_format`, `log_key`, `compression`, `simple_aggregation` → `aggregation`)
 * and fluent-plugin-kinesis (`append_new_line` → `append_newline`).
 */
export const firehoseSchema = z
  .strictObject({
    ...awsFields,
    ...recordFields,
    /** The delivery stream records go to. */
    delivery_stream: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'expected a delivery stream name (1-64 of a-z A-Z 0-9 _ . -)'),
    /**
     * End each record in a newline (default): Firehose writes records to S3 back to back, so
     * without one the objects are not JSON lines.
     */
    append_newline: z.boolean().default(true),
    /**
     * `simple`: pack as many records as fit into one Firehose record of up to 1,000 KiB.
     * Firehose bills ingestion per record rounded up to 5 KB: small log lines cost far less packed.
     */
    aggregation: z.enum(['none', 'simple']).default('none'),
    /** Compress each Firehose record (an aggregate as a whole); S3 gets the compressed bytes. */
    compression: z.enum(['none', 'gzip', 'zstd']).default('none'),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    checkAwsConfig(c, issue);
    checkRecordFields(c, issue);
    if (c.aggregation === 'simple' && !c.append_newline)
      issue(
        'append_newline',
        'aggregation: simple joins records by their newlines: keep append_newline true',
      );
  });

export type FirehoseConfig = z.output<typeof firehoseSchema>;
