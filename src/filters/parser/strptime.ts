import { EventTime } from '../../core/event-time.ts';

/**
 * strptime for record times, the directives Fluentd (Ruby `Time.strptime`) and Fluent Bit
 * configs use. A format is compiled once into a list of steps; reading walks the text once,
 * so a time costs no regex and no backtracking.
 *
 * As in Ruby and Fluent Bit, `%L`, `%N` and `%f` read every fractional digit there is (kept to
 * nanoseconds), not a fixed three or nine. A space in the format matches any run of spaces, so
 * syslog's space-padded days (`Feb  5`) read with `%b %d`.
 */
export type TimeReader = (text: string) => EventTime | undefined;

interface Fields {
  year?: number;
  month?: number;
  day?: number;
  yday?: number;
  hour: number;
  minute: number;
  second: number;
  nsec: number;
  pm?: boolean;
  /** Seconds east of UTC, when the text says. */
  offset?: number;
  epoch?: number;
}

/** One step: reads at `pos`, returns the position after, or -1 when the text does not fit. */
type Step = (text: string, pos: number, f: Fields) => number;

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH_NAMES = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** Directives that stand for others, as C and Ruby define them. */
const COMPOSITE: Record<string, string> = { T: '%H:%M:%S', F: '%Y-%m-%d', D: '%m/%d/%y', R: '%H:%M' };

const isDigit = (c: number) => c >= 48 && c <= 57;

/** Up to `max` digits (at least one), after optional leading spaces as C's strptime allows. */
function number(min: number, max: number, set: (f: Fields, n: number) => void, lo = 0, hi = Infinity): Step {
  return (text, pos, f) => {
    while (text.charCodeAt(pos) === 32) pos++;
    let n = 0;
    let end = pos;
    while (end - pos < max && isDigit(text.charCodeAt(end))) n = n * 10 + text.charCodeAt(end++) - 48;
    if (end - pos < min || n < lo || n > hi) return -1;
    set(f, n);
    return end;
  };
}

function fraction(): Step {
  return (text, pos, f) => {
    let end = pos;
    while (isDigit(text.charCodeAt(end))) end++;
    if (end === pos) return -1;
    f.nsec = Number(text.slice(pos, Math.min(end, pos + 9)).padEnd(9, '0'));
    return end;
  };
}

/** A name from `short` (three letters), or its full form from `long`, case-insensitive. */
function name(short: readonly string[], long: readonly string[], set?: (f: Fields, i: number) => void): Step {
  return (text, pos, f) => {
    const head = text.slice(pos, pos + 3).toLowerCase();
    const i = short.indexOf(head);
    if (i < 0) return -1;
    const full = long[i]!;
    const end = text.slice(pos, pos + full.length).toLowerCase() === full ? pos + full.length : pos + 3;
    set?.(f, i);
    return end;
  };
}

/** `Z`, `+hh`, `+hhmm`, `+hh:mm` (and `-`); with `names`, also UTC / GMT / UT. */
function zone(names: boolean): Step {
  return (text, pos, f) => {
    if (names) {
      const m = /^(?:UTC|GMT|UT)/i.exec(text.slice(pos, pos + 3));
      if (m) {
        f.offset = 0;
        pos += m[0].length;
        if (text[pos] !== '+' && text[pos] !== '-') return pos;
      }
    }
    const c = text[pos];
    if (c === 'Z' || c === 'z') {
      f.offset = 0;
      return pos + 1;
    }
    if (c !== '+' && c !== '-') return -1;
    const m = /^(\d{2})(?::?(\d{2}))?/.exec(text.slice(pos + 1, pos + 6));
    if (!m) return -1;
    const minutes = Number(m[1]) * 60 + Number(m[2] ?? 0);
    if (minutes > 18 * 60) return -1;
    f.offset = (c === '-' ? -60 : 60) * minutes;
    return pos + 1 + m[0].length;
  };
}

function literal(ch: string): Step {
  if (ch === ' ') {
    return (text, pos) => {
      while (text.charCodeAt(pos) === 32 || text.charCodeAt(pos) === 9) pos++;
      return pos;
    };
  }
  return (text, pos) => (text[pos] === ch ? pos + 1 : -1);
}

function directive(d: string): Step | undefined {
  switch (d) {
    case 'Y':
      return number(4, 4, (f, n) => (f.year = n));
    case 'y':
      // POSIX: 69–99 are the 1900s, 00–68 the 2000s.
      return number(2, 2, (f, n) => (f.year = n < 69 ? 2000 + n : 1900 + n));
    case 'm':
      return number(1, 2, (f, n) => (f.month = n), 1, 12);
    case 'd':
    case 'e':
      return number(1, 2, (f, n) => (f.day = n), 1, 31);
    case 'j':
      return number(1, 3, (f, n) => (f.yday = n), 1, 366);
    case 'H':
      return number(1, 2, (f, n) => (f.hour = n), 0, 23);
    case 'I':
      return number(1, 2, (f, n) => (f.hour = n % 12), 1, 12);
    case 'M':
      return number(1, 2, (f, n) => (f.minute = n), 0, 59);
    case 'S':
      // 60: a leap second, as strptime allows.
      return number(1, 2, (f, n) => (f.second = n), 0, 60);
    case 'L':
    case 'N':
    case 'f':
      return fraction();
    case 's':
      return number(1, 12, (f, n) => (f.epoch = n));
    case 'b':
    case 'h':
    case 'B':
      return name(MONTHS, MONTH_NAMES, (f, i) => (f.month = i + 1));
    case 'a':
    case 'A':
      return name(DAYS, DAY_NAMES);
    case 'p':
      return (text, pos, f) => {
        const t = text.slice(pos, pos + 2).toUpperCase();
        if (t !== 'AM' && t !== 'PM') return -1;
        f.pm = t === 'PM';
        return pos + 2;
      };
    case 'z':
      return zone(false);
    case 'Z':
      return zone(true);
    case 'n':
    case 't':
      return literal(' ');
    case '%':
      return literal('%');
    default:
      return undefined;
  }
}

/**
 * Compiles `format`; throws on a directive it does not know (so a config error names it).
 * `offset` (seconds east of UTC) applies when the text carries no zone; a format without a
 * year takes the current one (the previous one for a date more than a day ahead: a December
 * line read in January), one without any date today's.
 */
export function compileStrptime(format: string, offset = 0): TimeReader {
  const steps: Step[] = [];
  const expanded = format.replace(/%([TFDR])/g, (_, d: string) => COMPOSITE[d]!);
  for (let i = 0; i < expanded.length; i++) {
    const ch = expanded[i]!;
    if (ch !== '%') {
      steps.push(literal(ch));
      continue;
    }
    // `%:z` is Ruby's spelling of the colon form, which %z reads anyway.
    const d = expanded[i + 1] === ':' && expanded[i + 2] === 'z' ? 'z' : expanded[i + 1];
    const step = d === undefined ? undefined : directive(d);
    if (!step) throw new Error(`time_format ${JSON.stringify(format)}: unsupported directive %${d ?? ''}`);
    steps.push(step);
    i += expanded[i + 1] === ':' ? 2 : 1;
  }
  return (text) => {
    const f: Fields = { hour: 0, minute: 0, second: 0, nsec: 0 };
    let pos = 0;
    for (const step of steps) {
      pos = step(text, pos, f);
      if (pos < 0) return undefined;
    }
    if (pos !== text.length) return undefined;
    return toEventTime(f, offset);
  };
}

function toEventTime(f: Fields, defaultOffset: number): EventTime | undefined {
  if (f.epoch !== undefined) return new EventTime(f.epoch, f.nsec);
  const hour = f.pm === undefined ? f.hour : f.hour + (f.pm ? 12 : 0);
  const offset = f.offset ?? defaultOffset;
  if (f.year === undefined && f.month === undefined && f.day === undefined && f.yday === undefined) {
    // A time of day alone is today's, as Ruby's Time.strptime (Fluentd) reads it.
    const today = new Date();
    f.year = today.getUTCFullYear();
    f.month = today.getUTCMonth() + 1;
    f.day = today.getUTCDate();
  }
  const month = f.month ?? 1;
  const dayOfMonth = f.day ?? 1;
  const at = (year: number) => {
    const day = Date.UTC(year, f.yday === undefined ? month - 1 : 0, f.yday ?? dayOfMonth);
    // Date.UTC rolls 31 Feb into March: a day the month lacks is not a date.
    if (f.yday === undefined && new Date(day).getUTCDate() !== dayOfMonth) return undefined;
    return day / 1000 + hour * 3600 + f.minute * 60 + f.second - offset;
  };
  let sec: number | undefined;
  if (f.year !== undefined) sec = at(f.year);
  else {
    const year = new Date().getUTCFullYear();
    sec = at(year);
    if (sec !== undefined && sec > Date.now() / 1000 + 86_400) sec = at(year - 1);
  }
  return sec === undefined || sec < 0 ? undefined : new EventTime(sec, f.nsec);
}

/** `+09:00`, `-0500`, `Z` or `UTC` as seconds east of UTC; throws otherwise. */
export function parseOffset(text: string): number {
  const f = { offset: undefined } as unknown as Fields;
  const end = zone(true)(text, 0, f);
  if (end !== text.length || f.offset === undefined)
    throw new Error(`expected an offset like +09:00, -0500 or UTC, got ${JSON.stringify(text)}`);
  return f.offset;
}
