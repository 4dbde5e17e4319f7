import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import type { TagRun } from '../../buffer/chunk.ts';
import { decodeEntries } from '../../core/batch.ts';
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
 * One PackedForward message per run of one tag. The batch payloads are already PackedForward
 * entry streams, so they go out as they are (copied once, into the message) unless integer
 * times are asked for.
 */
export async function packRun(
  run: TagRun,
  chunk: string | undefined,
  options: { compress: 'text' | 'gzip'; timeAsInteger: boolean },
): Promise<ForwardMessage> {
  let entries: readonly Uint8Array[] = run.payloads;
  let count = run.count;
  const rejected: Rejection[] = [];
  if (options.timeAsInteger) {
    const parts: Buffer[] = [];
    for (const payload of run.payloads) {
      let decoded: ReturnType<typeof decodeEntries>;
      try {
        decoded = decodeEntries(payload);
      } catch (err) {
        // The stored bytes decode the same on every try.
        throw new RejectError(`cannot decode the records of tag ${run.tag}: ${encodeFailure(err)}`);
      }
      for (const e of decoded) {
        try {
          parts.push(pack([e.time.sec, e.record]));
        } catch (err) {
          rejected.push({ entry: { ...e, tag: run.tag }, reason: encodeFailure(err) });
        }
      }
    }
    entries = parts;
    count = parts.length;
  }
  const gzip = options.compress === 'gzip';
  const bytes = encodePackedForward(run.tag, gzip ? [await gzipAsync(Buffer.concat(entries))] : entries, {
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
