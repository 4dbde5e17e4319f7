import { EntryCursor } from '../core/entry-cursor.ts';
import { JsonBuffer } from '../core/json-buffer.ts';
import { asEncodeError, writeIsoTime, writeJson } from '../core/msgpack-json.ts';
import type { Chunk, Rejection } from './output.ts';

/**
 * Line formats shared by the `stdout` and `file` outputs. Every line ends in `\n`.
 * - `json`: `{"tag":…,"time":"<RFC 3339, 9 fractional digits>","record":{…}}` (+ `"metadata"`
 *   when Fluent Bit sent some), so the tag and the exact time survive.
 * - `record`: the record alone, for sinks that only want the payload.
 * - `fluentd`: Fluentd out_file's default `time<TAB>tag<TAB>json`, time in UTC with nanoseconds.
 *
 * Lines are written from the entries' msgpack bytes (see core/msgpack-json.ts): no record is
 * decoded unless it cannot be written and must be handed back.
 */
export const FORMATS = ['json', 'record', 'fluentd'] as const;
export type Format = (typeof FORMATS)[number];

const RECORD_KEY = Buffer.from(',"record":');
const METADATA_KEY = Buffer.from(',"metadata":');

/** Writes one entry per line; keeps the bytes of the last tag it saw ready. */
export class LineWriter {
  readonly format: Format;
  private tag: string | undefined;
  /** `{"tag":"…","time":"` for json, `\t<tag>\t` for fluentd. */
  private tagBytes: Buffer = Buffer.alloc(0);

  constructor(format: Format) {
    this.format = format;
  }

  /**
   * Appends the line of the entry under `cursor`. Throws what the record cannot be written
   * for (it is the record's, the same every try); `out` is then as it was.
   */
  write(out: JsonBuffer, tag: string, cursor: EntryCursor): void {
    const mark = out.n;
    const src = cursor.payload;
    try {
      switch (this.format) {
        case 'record':
          cursor.recordEndsAt(writeJson(out, src, cursor.recordStart, src.length));
          break;
        case 'json':
          out.bytes(this.tagPart(tag));
          writeIsoTime(out, cursor.sec, cursor.nsec);
          out.byte(0x22); // "
          out.bytes(RECORD_KEY);
          cursor.recordEndsAt(writeJson(out, src, cursor.recordStart, src.length));
          if (cursor.metaStart >= 0) {
            out.bytes(METADATA_KEY);
            writeJson(out, src, cursor.metaStart, cursor.metaEnd);
          }
          out.byte(0x7d); // }
          break;
        case 'fluentd':
          writeIsoTime(out, cursor.sec, cursor.nsec);
          out.bytes(this.tagPart(tag));
          cursor.recordEndsAt(writeJson(out, src, cursor.recordStart, src.length));
          break;
      }
    } catch (err) {
      out.n = mark;
      throw err;
    }
    out.byte(0x0a);
  }

  private tagPart(tag: string): Buffer {
    if (tag !== this.tag) {
      this.tag = tag;
      this.tagBytes = Buffer.from(
        this.format === 'json' ? `{"tag":${JSON.stringify(tag)},"time":"` : `\t${tag}\t`,
        'utf8',
      );
    }
    return this.tagBytes;
  }
}

/**
 * A chunk's lines, and the entries that cannot be written: an encoding failure (an unknown
 * ext type, say) is the record's, and the same on every try, so it is rejected alone
 * instead of failing the chunk for good.
 */
export function formatChunk(format: Format, chunk: Chunk): { bytes: Buffer; rejected: Rejection[] } {
  const out = new JsonBuffer(outputSizeHint(chunk.bytes));
  const writer = new LineWriter(format);
  const rejected: Rejection[] = [];
  for (const batch of chunk.batches) {
    const cursor = new EntryCursor(batch.payload);
    while (cursor.next()) {
      try {
        writer.write(out, batch.tag, cursor);
      } catch (err) {
        rejected.push({ entry: cursor.decode(batch.tag), reason: encodeFailure(err) });
      }
    }
  }
  return { bytes: out.view(), rejected };
}

/** JSON of msgpack records runs about a fifth longer; lines add their tag and time. */
export function outputSizeHint(msgpackBytes: number): number {
  return Math.ceil(msgpackBytes * 1.5) + 1024;
}

/** The reason kept with a record no encoding could take. */
export function encodeFailure(err: unknown): string {
  const failure = asEncodeError(err);
  const message = `${failure.name}: ${failure.message}`;
  return `cannot encode the record: ${message}`;
}
