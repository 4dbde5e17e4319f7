import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { type Batch, decodeEntries } from '../../core/batch.ts';
import type { Entry } from '../../core/entry.ts';
import { eventTimeBytes, pack } from '../../core/msgpack.ts';

export interface ForwardMessage {
  /** The bytes to write. */
  bytes: Buffer;
  /** The `option.chunk` id the receiver acks, when acks are wanted. */
  chunk: string | undefined;
  count: number;
}

/**
 * One PackedForward message per batch: `[tag, entries, {size, chunk?, compressed?}]`. The
 * batch payload is already a PackedForward entry stream, so it goes out as it is unless
 * integer times are asked for. The chunk id is derived from the buffer chunk's id, so a
 * retried chunk carries the same ids and a deduplicating receiver keeps one copy.
 */
export function encodePackedForward(
  batch: Batch,
  chunkId: string | undefined,
  options: { compress: 'text' | 'gzip'; timeAsInteger: boolean },
): ForwardMessage {
  let entries: Uint8Array = batch.payload;
  if (options.timeAsInteger) {
    entries = Buffer.concat(decodeEntries(batch.payload).map((e) => pack([e.time.sec, e.record])));
  }
  const option: Record<string, unknown> = { size: batch.count };
  if (chunkId !== undefined) option.chunk = chunkId;
  if (options.compress === 'gzip') {
    entries = gzipSync(entries);
    option.compressed = 'gzip';
  }
  return {
    bytes: pack([batch.tag, Buffer.from(entries.buffer, entries.byteOffset, entries.byteLength), option]),
    chunk: chunkId,
    count: batch.count,
  };
}

/** Base64 of 16 bytes, like Fluentd's chunk ids; the same for one buffer chunk and batch index on every try. */
export function chunkIdFor(bufferChunkId: string, index: number): string {
  return createHash('md5').update(`${bufferChunkId}:${index}`).digest('base64');
}

/** Message mode, `[tag, time, record(, {chunk})]`: one record per message, as Docker's log driver sends. */
export function encodeMessage(tag: string, entry: Entry, chunkId?: string): Buffer {
  const parts = [
    Buffer.from([chunkId === undefined ? 0x93 : 0x94]),
    pack(tag),
    eventTimeBytes(entry.time),
    pack(entry.record),
  ];
  if (chunkId !== undefined) parts.push(pack({ chunk: chunkId }));
  return Buffer.concat(parts);
}
