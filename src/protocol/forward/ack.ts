import { isWholeValue, MAP, newHeader, readHeader, STR, skipValue } from './msgpack-scan.ts';

/**
 * `{"ack": <chunk>}`: the chunk id echoed exactly as the sender encoded it, so any client
 * compares it equal (Fluent Bit and Fluentd send a string; some libraries other types).
 */

const MSGPACK_ACK_KEY = Buffer.from([0x81, 0xa3, 0x61, 0x63, 0x6b]); // fixmap(1) "ack"

/** `chunk` is the option's msgpack bytes (msgpack mode) or its JSON text (JSON mode). */
export function encodeAck(chunk: Uint8Array, format: 'msgpack' | 'json'): Buffer {
  if (format === 'msgpack') return Buffer.concat([MSGPACK_ACK_KEY, chunk]);
  return Buffer.concat([Buffer.from('{"ack":'), chunk, Buffer.from('}')]);
}

/** Client side: the chunk bytes of a msgpack ack, or undefined when the frame is not one. */
export function parseAck(frame: Uint8Array): Uint8Array | undefined {
  const h = newHeader();
  const end = frame.length;
  if (!isWholeValue(frame, 8)) return undefined;
  let p = readHeader(frame, 0, end, h);
  if (h.type !== MAP) return undefined;
  const pairs = h.length;
  for (let i = 0; i < pairs; i++) {
    const keyEnd = skipValue(frame, p, end, 8);
    const body = readHeader(frame, p, keyEnd, h);
    const isAck =
      h.type === STR && h.length === 3 && Buffer.from(frame.subarray(body, keyEnd)).toString() === 'ack';
    const valueEnd = skipValue(frame, keyEnd, end, 8);
    if (isAck) return frame.subarray(keyEnd, valueEnd);
    p = valueEnd;
  }
  return undefined;
}
