import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { type Batch, decodeEntries } from '../../core/batch.ts';
import { pack } from '../../core/msgpack.ts';
import { encodePackedForward } from '../../protocol/forward/modes.ts';

export interface ForwardMessage {
  /** The bytes to write. */
  bytes: Buffer;
  /** The `option.chunk` id the receiver acks, when acks are wanted. */
  chunk: string | undefined;
  count: number;
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
  if (options.timeAsInteger) {
    entries = Buffer.concat(decodeEntries(batch.payload).map((e) => pack([e.time.sec, e.record])));
  }
  const gzip = options.compress === 'gzip';
  const bytes = encodePackedForward(batch.tag, gzip ? await gzipAsync(entries) : entries, {
    size: batch.count,
    chunk,
    compressed: gzip ? 'gzip' : undefined,
  });
  return { bytes, chunk, count: batch.count };
}

/**
 * Base64 of 16 bytes, like Fluentd's chunk ids, derived from the buffer chunk's id: a retried
 * chunk carries the same ids, so a deduplicating receiver (Estuary's dedupe_window) keeps one copy.
 */
export function chunkIdFor(bufferChunkId: string, index: number): string {
  return createHash('md5').update(`${bufferChunkId}:${index}`).digest('base64');
}
