import type { TaggedEntry } from '../../core/entry.ts';
import { decodeSpans, EntryCursor, type EntrySpan } from '../../core/entry-cursor.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { outputSizeHint } from '../format.ts';
import type { Chunk, Rejection } from '../output.ts';
import { type RecordEncoder, refusalReason } from './encode.ts';

/** One log record as encoded: where its bytes lie in the chunk's buffer, and where it came from. */
export interface EncodedEntry {
  start: number;
  end: number;
  /** The entry in its batch: decoded only when it comes back (a retry, a rejection). */
  readonly span: EntrySpan;
  /** Kinesis partition key, when the output asks for one. */
  key: string;
}

export interface Encoded {
  /** Every encoded record, one after the other. */
  bytes: Buffer;
  entries: EncodedEntry[];
  rejected: Rejection[];
}

export interface EncodeOptions {
  encoder: RecordEncoder;
  /** The partition key of the entry under the cursor (kinesis_streams). */
  key?: (tag: string, cursor: EntryCursor) => string;
}

/** A chunk's records into one buffer; the ones no encoding takes are rejected alone. */
export function encodeChunk(chunk: Chunk, o: EncodeOptions): Encoded {
  const out = new JsonBuffer(outputSizeHint(chunk.bytes));
  const entries: EncodedEntry[] = [];
  const rejected: Rejection[] = [];
  for (const batch of chunk.batches) {
    const cursor = new EntryCursor(batch.payload);
    while (cursor.next()) {
      const start = out.n;
      let key = '';
      try {
        if (o.key) key = o.key(batch.tag, cursor);
        o.encoder.write(out, batch.tag, cursor);
      } catch (err) {
        // Pure: what fails once (no log_key field, an unknown ext type) fails every time.
        rejected.push({ entry: cursor.decode(batch.tag), reason: refusalReason(err) });
        continue;
      }
      entries.push({
        start,
        end: out.n,
        span: { tag: batch.tag, payload: batch.payload, start: cursor.start, end: cursor.end },
        key,
      });
    }
  }
  return { bytes: out.view(), entries, rejected };
}

/** The log records of these encoded entries, decoded (to retry or reject them). */
export function entriesOf(encoded: readonly EncodedEntry[]): TaggedEntry[] {
  return decodeSpans(encoded.map((e) => e.span));
}
