import type { Batch } from '../../core/batch.ts';
import { pack, unpackStream } from '../../core/msgpack.ts';

/**
 * A chunk in Redis is a list whose elements hold frames, one per staged batch: msgpack
 * `[tag, count, payload]`, the payload being the batch's msgpack entries as they came
 * (bin). Staging is one RPUSH and the entries are never re-encoded.
 */
export function encodeFrames(batches: readonly Batch[]): Buffer {
  // The payload is copied once, here: packing it as a value would copy it into msgpackr's
  // buffer, then out of it.
  const parts: Uint8Array[] = [];
  for (const b of batches) parts.push(frameHead(b), b.payload);
  return Buffer.concat(parts);
}

/** `[tag, count, <bin header>`: what precedes the payload bytes in a frame. */
function frameHead(b: Batch): Buffer {
  const head = pack([b.tag, b.count]);
  head[0] = 0x93;
  const n = b.payload.length;
  const bin =
    n <= 0xff
      ? Buffer.from([0xc4, n])
      : n <= 0xffff
        ? Buffer.from([0xc5, n >> 8, n & 0xff])
        : Buffer.from([0xc6, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, bin]);
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
