import type { JsonBuffer } from '../../core/json-buffer.ts';

/**
 * Appends all of `bytes` (an action line, a field name kept between records). JsonBuffer.bytes
 * makes a subarray of anything over 32 bytes, an allocation per call that a whole array does
 * not need (JsonBuffer itself could skip it when given the whole array).
 */
export function putBytes(out: JsonBuffer, bytes: Uint8Array): void {
  if (bytes.length < 32) {
    out.bytes(bytes);
    return;
  }
  const buf = out.ensure(bytes.length);
  buf.set(bytes, out.n);
  out.n += bytes.length;
}
