import type { LogRecord } from '../../core/entry.ts';
import type { EntryCursor } from '../../core/entry-cursor.ts';
import type { JsonBuffer } from '../../core/json-buffer.ts';
import { writeJson } from '../../core/msgpack-json.ts';
import { bytePathUsable, topLevelKeys, UNSURE } from '../elasticsearch/record-fields.ts';
import { TimeField, type TimeStyle } from '../time-field.ts';

/**
 * `format: json_lines`: each record as one line of JSON, with its time added after its own
 * keys under `json_date_key` — unless the record has that key: its own value is kept, not
 * doubled by a second key of the same name.
 */
export class JsonLineWriter {
  private readonly key: string | false;
  private readonly keyBytes: Uint8Array[];
  private readonly date: TimeField | undefined;

  constructor(dateKey: string | false, style: TimeStyle) {
    this.key = dateKey;
    this.keyBytes = dateKey !== false && bytePathUsable([dateKey]) ? [Buffer.from(dateKey, 'utf8')] : [];
    this.date = dateKey === false ? undefined : new TimeField(dateKey, style);
  }

  /**
   * Appends the line of the entry under `cursor`; throws what the record cannot be written
   * for (the same on every try), leaving `out` as it was.
   */
  write(out: JsonBuffer, cursor: EntryCursor, decode: () => LogRecord): void {
    const src = cursor.payload;
    const mark = out.n;
    try {
      const end = writeJson(out, src, cursor.recordStart, src.length);
      cursor.recordEndsAt(end);
      if (this.date && !this.has(cursor, end, decode)) {
        const empty = out.n - mark === 2;
        out.n -= 1; // reopen the map: the time goes before its closing brace
        if (!empty) out.byte(0x2c); // ,
        this.date.write(out, cursor.sec, cursor.nsec);
        out.byte(0x7d); // }
      }
    } catch (err) {
      out.n = mark;
      throw err;
    }
    out.byte(0x0a);
  }

  /** Whether the record has a `json_date_key` of its own. */
  private has(cursor: EntryCursor, end: number, decode: () => LogRecord): boolean {
    const found =
      this.keyBytes.length > 0
        ? topLevelKeys(cursor.payload, cursor.recordStart, end, this.keyBytes)
        : UNSURE;
    return found === UNSURE ? Object.hasOwn(decode(), this.key as string) : found !== 0;
  }
}
