import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { type Batch, decodeEntries } from '../../core/batch.ts';
import { RejectError } from '../../core/errors.ts';
import { pack } from '../../core/msgpack.ts';
import { encodePackedForward } from '../../protocol/forward/modes.ts';
import { encodeFailure } from '../format.ts';
import type { Rejection } from '../output.ts';

export interface ForwardMessage {
  /** The bytes to write. */
  bytes: Buffer;
  /** The `option.chunk` id the receiver acks, when acks are wanted. */
  chunk: string | undefined;
  count: number;
  /** Records that could not be re-encoded (time_as_integer): never sent, rejected. */
  rejected?: Rejection[];
}

/** Off the event loop: a chunk is up to chunk_limit_size, and other connections wait meanwhile. */
const gzipAsync = promisify(gzipCallback);

/**
 * One PackedForward message per batch. The batch payload is already a PackedForward entry
 * stream, so it goes out as it is unless integer times are asked for.
 */
export async function packBatch(
  batch: Batch,
  chunk: string | undefined,
  options: { compress: 'text' | 'gzip'; timeAsInteger: boolean },
): Promise<ForwardMessage> {
  let entries: Uint8Array = batch.payload;
  let count = batch.count;
  const rejected: Rejection[] = [];
  if (options.timeAsInteger) {
    let decoded: ReturnType<typeof decodeEntries>;
    try {
      decoded = decodeEntries(batch.payload);
    } catch (err) {
      // The stored bytes decode the same on every try.
      throw new RejectError(`cannot decode the records of tag ${batch.tag}: ${encodeFailure(err)}`);
    }
    const parts: Buffer[] = [];
    for (const e of decoded) {
      try {
        parts.push(pack([e.time.sec, e.record]));
      } catch (err) {
        rejected.push({ entry: { ...e, tag: batch.tag }, reason: encodeFailure(err) });
      }
    }
    entries = Buffer.concat(parts);
    count = parts.length;
  }
  const gzip = options.compress === 'gzip';
  const bytes = encodePackedForward(batch.tag, gzip ? await gzipAsync(entries) : entries, {
    size: count,
    chunk,
    compressed: gzip ? 'gzip' : undefined,
  });
  return { bytes, chunk, count, rejected };
}

/**
 * Base64 of 16 bytes, like Fluentd's chunk ids, derived from the buffer chunk's id: a retried
 * chunk carries the same ids, so a deduplicating receiver (Estuary's dedupe_window) keeps one copy.
 */
export function chunkIdFor(bufferChunkId: string, index: number): string {
  return createHash('md5').update(`${bufferChunkId}:${index}`).digest('base64');
}
