import { EventTime } from '../../core/event-time.ts';
import { parseTime } from '../../core/parse-time.ts';
import { compileStrptime, type TimeReader } from './strptime.ts';

/** A record's time value (text, number, EventTime) as an EventTime; undefined when it is none. */
export type ValueTime = (value: unknown) => EventTime | undefined;

export type TimeType = 'string' | 'float' | 'unixtime';

const DECIMAL = /^\s*(\d+)(?:\.(\d*))?\s*$/;

/** Unix seconds with a fraction, every digit of a text kept (a double would round them). */
function fromFloat(value: unknown): EventTime | undefined {
  if (typeof value === 'number')
    return Number.isFinite(value) && value >= 0 ? EventTime.fromSeconds(value) : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DECIMAL.exec(value);
  if (!m) return undefined;
  return new EventTime(Number(m[1]), Number((m[2] ?? '').slice(0, 9).padEnd(9, '0')));
}

/** Whole unix seconds; a fraction is dropped, as Fluentd's `unixtime` does. */
function fromUnixtime(value: unknown): EventTime | undefined {
  const t = fromFloat(value);
  return t && new EventTime(t.sec, 0);
}

/**
 * How a time field is read: `time_type` float / unixtime, or string with `time_format`
 * (strptime; `offset` for a format without a zone). A string without a format is read the way
 * inputs read record times (RFC 3339 / ISO 8601, or unix seconds…nanoseconds by magnitude).
 */
export function valueTime(type: TimeType, format: string | undefined, offset: number): ValueTime {
  if (type === 'float') return fromFloat;
  if (type === 'unixtime') return fromUnixtime;
  if (format === undefined) return (value) => parseTime(value);
  return textTime(compileStrptime(format, offset));
}

/** A strptime reader over record values; an EventTime passes as it is. */
export function textTime(...readers: TimeReader[]): ValueTime {
  return (value) => {
    if (value instanceof EventTime) return value;
    const text = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : undefined;
    if (text === undefined) return undefined;
    for (const read of readers) {
      const t = read(text);
      if (t) return t;
    }
    return undefined;
  };
}
