import { EventTime, FLUENT_BIT_GROUP_END } from './event-time.ts';

// Below this a number is seconds (1e11 s is the year 5138); then milliseconds up to 1e14
// (the year 5138 again), microseconds up to 1e17, nanoseconds beyond. This covers Fluent Bit's
// `double`, `epoch` and `epoch_ms` date formats and the usual exporters' units; no real
// timestamp is ambiguous between two of them.
const MS_FROM = 1e11;
const US_FROM = 1e14;
const NS_FROM = 1e17;
/** Latest second an EventTime can carry: the seconds field is uint32, the top two are group markers. */
const MAX_SEC = FLUENT_BIT_GROUP_END - 1;

/**
 * A timestamp as senders write it: EventTime; unix seconds, milliseconds, microseconds or
 * nanoseconds (by magnitude, see above) as a number or numeric string; or ISO 8601 / RFC 3339
 * (also Fluent Bit's `java_sql_timestamp`), keeping every fractional digit. Undefined when
 * unparsable or outside what an EventTime can hold.
 */
export function parseTime(value: unknown): EventTime | undefined {
  let time: EventTime | undefined;
  if (value instanceof EventTime) time = value;
  else if (typeof value === 'number') time = fromNumber(value);
  else if (typeof value === 'string') time = fromText(value.trim());
  return time && time.sec >= 0 && time.sec <= MAX_SEC ? time : undefined;
}

function fromNumber(value: number): EventTime | undefined {
  if (!Number.isFinite(value) || value < 0) return undefined;
  if (Number.isInteger(value)) return fromInteger(BigInt(value));
  if (value < MS_FROM) return EventTime.fromSeconds(value);
  if (value < US_FROM) return EventTime.fromMillis(value);
  return EventTime.fromMillis(value < NS_FROM ? value / 1e3 : value / 1e6);
}

function fromInteger(value: bigint): EventTime {
  const perSecond =
    value < BigInt(MS_FROM)
      ? 1n
      : value < BigInt(US_FROM)
        ? 1000n
        : value < BigInt(NS_FROM)
          ? 1_000_000n
          : 1_000_000_000n;
  return new EventTime(Number(value / perSecond), Number((value % perSecond) * (1_000_000_000n / perSecond)));
}

const NUMERIC = /^(\d+)(?:\.(\d+))?$/;

function fromText(text: string): EventTime | undefined {
  const m = NUMERIC.exec(text);
  if (!m) return EventTime.parseIso(text);
  const [, whole, frac] = m as unknown as [string, string, string | undefined];
  if (frac === undefined) return fromInteger(BigInt(whole));
  // Fractional seconds as text keep all nine digits, which a double would not.
  if (Number(whole) < MS_FROM) return new EventTime(Number(whole), Number(frac.slice(0, 9).padEnd(9, '0')));
  return fromNumber(Number(text));
}
