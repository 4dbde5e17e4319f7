import { createHash, hash } from 'node:crypto';
import { encodeEntry } from '../../core/batch.ts';
import type { TaggedEntry } from '../../core/entry.ts';
import type { EntryCursor } from '../../core/entry-cursor.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { isCanonical, UNSURE, writeCanonical } from './canonical-msgpack.ts';

/**
 * The `_id` that makes retries idempotent: SHA-256 over the tag, then the entry's canonical
 * msgpack encoding (EventTime with its nanoseconds, then the record), cut to 160 bits and
 * written base64url (27 characters). Canonical, not the bytes as received: the buffer
 * re-encodes the entries it retries, and decode → encode reaches a fixed point after one
 * round, so a first try and every retry hash the same bytes. Identical records with the same
 * tag and time become one document — which is the point.
 */
export function documentId(entry: TaggedEntry): string {
  return createHash('sha256')
    .update(entry.tag)
    .update('\0')
    .update(encodeEntry({ time: entry.time, record: entry.record }))
    .digest()
    .subarray(0, 20)
    .toString('base64url');
}

/** Characters of the id: 160 bits in base64url. */
export const ID_LENGTH = 27;

const BASE64URL = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');
/** Each base64url character's 6-bit value, by character code. */
const SEXTET = new Uint8Array(128);
for (const [i, c] of BASE64URL.entries()) SEXTET[c] = i;

/**
 * documentId from an entry's bytes: the hashed input (tag, NUL, then the entry as
 * `encodeEntry` writes it) is assembled in one scratch buffer, the record part by
 * writeCanonical, and hashed in one call. Records the canonical writer cannot vouch for are
 * decoded and go through documentId itself, so the id never depends on the path.
 */
export class DocumentIds {
  private readonly scratch = new JsonBuffer(1024);
  private tag: string | undefined;
  private tagBytes: Buffer = Buffer.alloc(0);

  /** Appends the id of the entry under `cursor` to `out`, as 27 ASCII characters. */
  write(out: JsonBuffer, tag: string, cursor: EntryCursor): void {
    const input = this.hashInput(tag, cursor);
    if (input === undefined) {
      out.ascii(documentId(cursor.decode(tag)));
      return;
    }
    // The string digest costs a third of a Buffer one. Its first 26 characters are those of
    // the first 20 bytes; the 27th also carries 2 bits of byte 21, which the 20-byte encoding
    // pads with zeros.
    const digest = hash('sha256', input, 'base64url');
    const at = out.n;
    out.ascii(digest);
    out.n = at + ID_LENGTH;
    const last = at + ID_LENGTH - 1;
    out.buf[last] = BASE64URL[SEXTET[out.buf[last]!]! & 0x3c]!;
  }

  /** tag, NUL, fixarray 2, EventTime, canonical record; undefined when the record must be decoded. */
  private hashInput(tag: string, cursor: EntryCursor): Buffer | undefined {
    const s = this.scratch;
    s.n = 0;
    s.bytes(this.tagPrefix(tag));
    s.byte(0xd7);
    s.byte(0x00);
    writeU32(s, cursor.sec);
    writeU32(s, cursor.nsec);
    const { payload, recordStart, recordEnd } = cursor;
    if (isCanonical(payload, recordStart, recordEnd)) s.bytes(payload, recordStart, recordEnd);
    else if (writeCanonical(s, payload, recordStart, recordEnd) === UNSURE) return undefined;
    return s.view();
  }

  /** The tag's UTF-8 bytes, NUL and the entry's array header, kept for the next entry of the tag. */
  private tagPrefix(tag: string): Buffer {
    if (tag !== this.tag) {
      this.tag = tag;
      this.tagBytes = Buffer.concat([Buffer.from(tag, 'utf8'), Buffer.from([0x00, 0x92])]);
    }
    return this.tagBytes;
  }
}

function writeU32(out: JsonBuffer, v: number): void {
  const buf = out.ensure(4);
  buf.writeUInt32BE(v >>> 0, out.n);
  out.n += 4;
}
