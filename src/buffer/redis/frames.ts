import type { Batch } from '../../core/batch.ts';
import { pack, unpackStream } from '../../core/msgpack.ts';

/**
 * A chunk in Redis is a list whose elements hold frames, one per staged batch: msgpack
 * `[tag, count, payload]`, the payload being the batch's msgpack entries as they came
 * (bin). Staging is one RPUSH and the entries are never re-encoded.
 */
export function encodeFrames(batches: readonly Batch[]): Buffer {
  return Buffer.concat(
    batches.map((b) =>
      pack([b.tag, b.count, Buffer.from(b.payload.buffer, b.payload.byteOffset, b.payload.byteLength)]),
    ),
  );
}

export function decodeFrames(elements: readonly Uint8Array[]): Batch[] {
  return elements.flatMap(decodeFrame);
}

function decodeFrame(data: Uint8Array): Batch[] {
  return unpackStream(data).map((item) => {
    if (!Array.isArray(item) || item.length !== 3) throw new Error('corrupt chunk frame in Redis');
    const [tag, count, payload] = item as unknown[];
    if (typeof tag !== 'string' || typeof count !== 'number' || !(payload instanceof Uint8Array))
      throw new Error('corrupt chunk frame in Redis');
    return { tag, count, payload, bytes: payload.length };
  });
}
