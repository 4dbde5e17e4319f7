import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import type { Chunk, WriteResult } from '../output.ts';
import type { EncodeOptions } from './entries.ts';
import { classifyStreamError } from './errors.ts';
import { type PackOptions, packChunk, type Unit } from './pack.ts';
import { putInCalls, type RecordFailure } from './put.ts';

/** What a stream output (firehose, kinesis_streams) is made of besides its client. */
export interface StreamSpec {
  id: string;
  logger: Logger;
  failed: Metrics['awsRecordsFailed'];
  encode: EncodeOptions;
  pack: PackOptions;
  /** Records and bytes one call may hold, bytes as `callBytes` counts them. */
  maxRecords: number;
  maxCallBytes: number;
  callBytes(unit: Unit): number;
  /** `firehose logs: PutRecordBatch`: names the call in errors. */
  call: string;
}

/** A chunk: encoded, packed into stream records, sent in calls, the answers folded into one result. */
export async function deliverChunk(
  chunk: Chunk,
  spec: StreamSpec,
  send: (units: readonly Unit[], signal: AbortSignal) => Promise<readonly (RecordFailure | undefined)[]>,
  signal: AbortSignal,
): Promise<WriteResult | undefined> {
  const { units, rejected } = await packChunk(chunk, spec.encode, spec.pack);
  const truncated = units.filter((u) => u.truncated).length;
  if (truncated > 0)
    spec.logger.warn(
      { chunk_id: chunk.id, records: truncated },
      `records over ${spec.pack.sink}'s limit truncated (oversize: truncate)`,
    );
  const codes = new Map<string, number>();
  const result = await putInCalls(
    units,
    {
      maxRecords: spec.maxRecords,
      maxBytes: spec.maxCallBytes,
      bytes: spec.callBytes,
      send,
      classify: (err) => classifyStreamError(err, spec.call),
      failed: (f) => {
        spec.failed.inc({ plugin_id: spec.id, error_code: f.code });
        codes.set(f.code, (codes.get(f.code) ?? 0) + 1);
      },
    },
    signal,
    rejected,
  );
  if (codes.size > 0)
    spec.logger.warn(
      { chunk_id: chunk.id, failed: Object.fromEntries(codes), retry: result?.retry?.length ?? 0 },
      `${spec.pack.sink} did not store some records; they will be retried`,
    );
  return result;
}
