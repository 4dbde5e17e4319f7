import { EventTime } from '../core/event-time.ts';
import type { JsonBuffer } from '../core/json-buffer.ts';
import { writeIsoTime } from '../core/msgpack-json.ts';
import { strftime } from '../core/strftime.ts';

/**
 * How an entry's time is written as a field:
 * - `rfc3339`: `"2018-05-30T09:39:52.000681000Z"` (nine fractional digits: nothing lost);
 * - Fluent Bit's `json_date_format` values: `iso8601` (`"…52.000681Z"`, microseconds),
 *   `java_sql_timestamp` (`"2018-05-30 09:39:52.000681"`), `double` (seconds with microseconds,
 *   a number), `epoch` (whole seconds), `epoch_ms`;
 * - `{ strftime }`: a strftime format of the UTC time, as a string.
 */
export type TimeStyle =
  | 'rfc3339'
  | 'iso8601'
  | 'java_sql_timestamp'
  | 'double'
  | 'epoch'
  | 'epoch_ms'
  | { strftime: string };

/** Fluent Bit's `json_date_format` names, for config schemas. */
export const JSON_DATE_FORMATS = ['iso8601', 'java_sql_timestamp', 'double', 'epoch', 'epoch_ms'] as const;

/** `"key":<time>` for one key and style; what does not change within a second is kept. */
export class TimeField {
  private readonly key: Buffer;
  private readonly style: TimeStyle;
  private readonly perSecond: boolean;
  private lastSec = -1;
  private lastValue: Buffer = Buffer.alloc(0);

  constructor(key: string, style: TimeStyle) {
    this.key = Buffer.from(`${JSON.stringify(key)}:`);
    this.style = style;
    this.perSecond = typeof style === 'object' && !/%[LN]/.test(style.strftime);
  }

  write(out: JsonBuffer, sec: number, nsec: number): void {
    out.bytes(this.key);
    const style = this.style;
    switch (style) {
      case 'rfc3339':
        out.byte(0x22); // "
        writeIsoTime(out, sec, nsec);
        out.byte(0x22);
        return;
      case 'epoch':
        out.uint(sec);
        return;
      case 'epoch_ms':
        out.uint(sec * 1000 + Math.floor(nsec / 1e6));
        return;
      case 'double':
        out.uint(sec);
        out.byte(0x2e); // .
        out.padded(Math.floor(nsec / 1000), 6);
        return;
      case 'iso8601':
      case 'java_sql_timestamp':
        if (sec !== this.lastSec) {
          const iso = new EventTime(sec, 0).toIso();
          const head = style === 'iso8601' ? iso.slice(0, 20) : `${iso.slice(0, 10)} ${iso.slice(11, 20)}`;
          this.lastValue = Buffer.from(`"${head}`);
          this.lastSec = sec;
        }
        out.bytes(this.lastValue);
        out.padded(Math.floor(nsec / 1000), 6);
        if (style === 'iso8601') out.byte(0x5a); // Z
        out.byte(0x22);
        return;
      default:
        if (!this.perSecond || sec !== this.lastSec) {
          this.lastValue = Buffer.from(JSON.stringify(strftime(style.strftime, new EventTime(sec, nsec))));
          this.lastSec = this.perSecond ? sec : -1;
        }
        out.bytes(this.lastValue);
    }
  }
}
