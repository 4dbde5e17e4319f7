import { z } from 'zod';
import { awsFields, checkAwsConfig } from '../../aws/config.ts';
import { parseRecordPath } from '../../core/record-path.ts';
import { checkRecordFields, recordFields } from '../aws-records/config.ts';

/**
 * `type: kinesis_streams`. Option names follow Fluent Bit's `kinesis_streams` output (`stream`,
 * `time_key`, `time_key_format`, `log_key`) and its Go predecessor (`partition_key`,
 * `replace_dots`), and fluent-plugin-kinesis's `kinesis_streams_aggregated` for KPL aggregation.
 */
export const kinesisStreamsSchema = z
  .strictObject({
    ...awsFields,
    ...recordFields,
    /** The stream's name… */
    stream: z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'expected a stream name (1-128 of a-z A-Z 0-9 _ . -)')
      .optional(),
    /** …or its ARN (a stream of another account, through a resource policy). */
    stream_arn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/[a-zA-Z0-9_.-]{1,128}$/,
        'expected arn:aws:kinesis:<region>:<account>:stream/<name>',
      )
      .optional(),
    /**
     * The record field whose value is each record's partition key (`$kubernetes['pod_name']`,
     * `container_id`); records without it, and every record when unset, get a random key.
     */
    partition_key: z
      .string()
      .min(1)
      .superRefine((value, ctx) => {
        try {
          parseRecordPath(value);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .optional(),
    /** End each record in a newline (off: a Kinesis record is a message of its own). */
    append_newline: z.boolean().default(false),
    /** `kpl`: pack the records of each partition key into KPL aggregated records the KCL de-aggregates. */
    aggregation: z.enum(['none', 'kpl']).default('none'),
  })
  .superRefine((c, ctx) => {
    const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
    checkAwsConfig(c, issue);
    checkRecordFields(c, issue);
    if ((c.stream === undefined) === (c.stream_arn === undefined))
      issue('stream', 'give the stream by `stream` (its name) or `stream_arn`, one of the two');
  });

export type KinesisStreamsConfig = z.output<typeof kinesisStreamsSchema>;
