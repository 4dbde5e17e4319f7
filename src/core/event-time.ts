/**
 * Fluentd's EventTime: whole seconds plus nanoseconds. Kept as two integers because a JS
 * double cannot hold a nanosecond timestamp (2^53 ns is only ~104 days).
 */
export class EventTime {
  readonly sec: number;
  readonly nsec: number;

  constructor(sec: number, nsec = 0) {
    this.sec = sec;
    this.nsec = nsec;
  }

  static now(): EventTime {
    // hrtime gives sub-millisecond resolution; anchor it to the wall clock once.
    const ns = wallAnchorNs + process.hrtime.bigint() - hrAnchorNs;
    return new EventTime(Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n));
  }

  /** Unix seconds, possibly fractional (Fluentd's `?time=1700000000.123`). */
  static fromSeconds(seconds: number): EventTime {
    const sec = Math.floor(seconds);
    // Round through microseconds: a double carries ~16 significant digits, so anything below
    // that is noise from the decimal → binary conversion.
    const nsec = Math.round((seconds - sec) * 1e6) * 1000;
    return nsec >= 1e9 ? new EventTime(sec + 1, 0) : new EventTime(sec, nsec);
  }

  static fromMillis(ms: number): EventTime {
    const sec = Math.floor(ms / 1000);
    return new EventTime(sec, Math.round((ms - sec * 1000) * 1e6));
  }

  /**
   * Parses an RFC 3339 / ISO 8601 timestamp keeping every fractional digit, which
   * `Date.parse` would truncate to milliseconds. Also takes the `YYYY-MM-DD HH:MM:SS.ffffff`
   * shape of Fluent Bit's `java_sql_timestamp` date format. Returns undefined when unparsable.
   */
  static parseIso(text: string): EventTime | undefined {
    const m = ISO_RE.exec(text);
    if (!m) return undefined;
    const [, date, clock, frac = '', zone = 'Z'] = m;
    const ms = Date.parse(`${date}T${clock}${zone === 'Z' || zone === 'z' ? 'Z' : zone}`);
    if (Number.isNaN(ms)) return undefined;
    const nsec = frac ? Number(frac.slice(0, 9).padEnd(9, '0')) : 0;
    return new EventTime(Math.floor(ms / 1000), nsec);
  }

  toMillis(): number {
    return this.sec * 1000 + Math.floor(this.nsec / 1e6);
  }

  toDate(): Date {
    return new Date(this.toMillis());
  }

  /** RFC 3339 in UTC with all nine fractional digits. */
  toIso(): string {
    const base = new Date(this.sec * 1000).toISOString(); // 2024-01-01T00:00:00.000Z
    return `${base.slice(0, 19)}.${String(this.nsec).padStart(9, '0')}Z`;
  }

  compare(other: EventTime): number {
    return this.sec - other.sec || this.nsec - other.nsec;
  }

  equals(other: EventTime): boolean {
    return this.sec === other.sec && this.nsec === other.nsec;
  }
}

const ISO_RE = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?$/;

const hrAnchorNs = process.hrtime.bigint();
const wallAnchorNs = BigInt(Date.now()) * 1_000_000n;

/** Seconds markers Fluent Bit uses for group start/end entries in its chunk format. */
export const FLUENT_BIT_GROUP_START = 0xffffffff;
export const FLUENT_BIT_GROUP_END = 0xfffffffe;
