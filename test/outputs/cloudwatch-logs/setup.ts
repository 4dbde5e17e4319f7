import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import type { LogRecord } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { cloudwatchLogsOutput } from '../../../src/outputs/cloudwatch-logs/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import type { CloudWatchFake } from '../../support/cloudwatch-fake.ts';

/** What the cloudwatch_logs tests share: credentials for the fake, an output on it, chunks. */

useAwsTestEnv();

export const T0 = 1_700_000_000;

export function cloudwatch(
  fake: CloudWatchFake,
  outputs: Output[],
  options: Record<string, unknown> = {},
  metrics = new Metrics(),
): Output {
  const output = cloudwatchLogsOutput.create(
    cloudwatchLogsOutput.schema.parse({
      log_group_name: 'app',
      log_stream_name: 'main',
      endpoint: fake.url,
      ...options,
    }),
    { id: 'cw', logger: silentLogger(), metrics, configDir: '/' },
  );
  outputs.push(output);
  return output;
}

/** One tag's records, at `T0 + i` seconds unless `at` says otherwise (milliseconds). */
export function chunkOf(
  records: LogRecord[],
  options: { tag?: string; at?: (i: number) => number; id?: string } = {},
): Chunk {
  const at = options.at ?? ((i: number) => (T0 + i) * 1000);
  const entries = records.map((record, i) => ({ time: EventTime.fromMillis(at(i)), record }));
  return makeChunk(options.id ?? 'c1', [makeBatch(options.tag ?? 'app.web', entries)], 0);
}

/** A chunk of several tags, one batch each. */
export function chunkOfTags(batches: { tag: string; records: LogRecord[] }[]): Chunk {
  return makeChunk(
    'c1',
    batches.map(({ tag, records }) =>
      makeBatch(
        tag,
        records.map((record, i) => ({ time: new EventTime(T0 + i, 0), record })),
      ),
    ),
    0,
  );
}

/**
 * A chunk of one entry `[T0, record]` whose record is these msgpack bytes as they are: what
 * a sender may write that an encoder of JavaScript objects never would (a str that is not
 * UTF-8, an integer key).
 */
export function rawRecordChunk(record: readonly number[]): Chunk {
  const time = Buffer.alloc(4);
  time.writeUInt32BE(T0);
  const payload = Buffer.from([0x92, 0xce, ...time, ...record]);
  return makeChunk('c1', [{ tag: 'app', payload, count: 1, bytes: payload.length }], 0);
}
