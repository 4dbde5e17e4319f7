import type { LogRecord } from '../../core/entry.ts';
import type { EntryCursor } from '../../core/entry-cursor.ts';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { pack } from '../../core/msgpack.ts';
import { writeJson } from '../../core/msgpack-json.ts';
import { getPath } from '../../core/record-path.ts';
import { newHeader, readHeader, STR } from '../../protocol/forward/msgpack-scan.ts';
import { bytePathUsable, findPath, UNSURE } from '../elasticsearch/record-fields.ts';

const h = newHeader();

/** The record lacks the field `format: plain` writes: it has no line to give. */
export class NoLogKeyError extends Error {
  override readonly name = 'NoLogKeyError';
}

/**
 * `format: plain`: one field of each record per line (Fluent Bit's `log_key`) — the container's
 * own log line, as it wrote it. A string is written as its bytes; any other value as JSON.
 */
export class PlainWriter {
  private readonly key: string;
  private readonly keyBytes: Uint8Array[] | undefined;

  constructor(logKey: string) {
    this.key = logKey;
    this.keyBytes = bytePathUsable([logKey]) ? [Buffer.from(logKey, 'utf8')] : undefined;
  }

  /**
   * Appends the line of the entry under `cursor`; throws why it cannot (no such field, a value
   * JSON cannot take), the same on every try, leaving `out` as it was.
   */
  write(out: JsonBuffer, cursor: EntryCursor, decode: () => LogRecord): void {
    const src = cursor.payload;
    const mark = out.n;
    try {
      const at =
        this.keyBytes === undefined ? UNSURE : findPath(src, cursor.recordStart, src.length, this.keyBytes);
      if (at === UNSURE) this.writeDecoded(out, decode());
      else if (at < 0)
        throw new NoLogKeyError(`the record has no ${JSON.stringify(this.key)} field (log_key)`);
      else {
        const body = readHeader(src, at, src.length, h);
        if (body >= 0 && h.type === STR) out.bytes(src, body, body + h.length);
        else writeJson(out, src, at, src.length);
      }
    } catch (err) {
      out.n = mark;
      throw err;
    }
    out.byte(0x0a);
  }

  /** The rare record the bytes cannot answer for (a number key beside the field). */
  private writeDecoded(out: JsonBuffer, record: LogRecord): void {
    const value = getPath(record, [this.key]);
    if (value === undefined)
      throw new NoLogKeyError(`the record has no ${JSON.stringify(this.key)} field (log_key)`);
    if (typeof value === 'string') out.utf8(value);
    else {
      const bytes = pack(value);
      writeJson(out, bytes, 0, bytes.length);
    }
  }
}
