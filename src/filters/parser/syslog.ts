import type { Format, Values } from './format.ts';
import { groupsOf } from './format.ts';
import { compileStrptime } from './strptime.ts';
import { textTime, valueTime } from './time.ts';

/**
 * Syslog lines, with the field names of Fluent Bit's syslog-rfc3164 and syslog-rfc5424 parsers
 * (pri, time, host, ident, pid, msgid, extradata, message), the time kept as Fluent Bit keeps
 * it. Where those regexes cut a valid line wrong, these follow the RFCs:
 * - RFC 3164: the tag ends at the first `[`, `:` or space (Fluent Bit's `[^:]*:` skips to the
 *   first colon anywhere, into the message); `<pri>` is optional (files written by rsyslog have
 *   none); the time may also be RFC 3339, as rsyslog's high-precision format writes it.
 * - RFC 5424: PROCID is any word (`-` or a name, not only digits); structured data is read
 *   element by element, quoted `]` included (Fluent Bit's greedy `\[(.*)\]` runs into a message
 *   holding `]`); the message is optional, as the RFC has it.
 * Every quantifier stops at a character it cannot take, so a line is read in one pass.
 */

const RFC3164 =
  /^(?:<(?<pri>\d{1,3})>)?(?<time>[A-Z][a-z]{2} {1,2}\d{1,2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T[^ ]+) (?<host>[^ ]+) (?<ident>[^ :[]*)(?:\[(?<pid>\d+)\])?:? *(?<message>[\s\S]*)$/;

const SD_ELEMENT = String.raw`\[[^\]"]*(?:"(?:[^"\\]|\\[\s\S])*"[^\]"]*)*\]`;
const RFC5424 = new RegExp(
  String.raw`^<(?<pri>\d{1,3})>1 (?<time>[^ ]+) (?<host>[^ ]+) (?<ident>[^ ]+) (?<pid>[^ ]+) (?<msgid>[^ ]+) (?<extradata>-|(?:${SD_ELEMENT})+)(?: (?<message>[\s\S]*))?$`,
);

const rfc3164 = groupsOf(RFC3164, ['pri', 'time', 'host', 'ident', 'pid', 'message']);
const rfc5424 = groupsOf(RFC5424, ['pri', 'time', 'host', 'ident', 'pid', 'msgid', 'extradata', 'message']);

/** RFC 5424's NILVALUE time: the line has none, so the entry keeps its own. */
function withoutNilTime(values: Values | undefined): Values | undefined {
  if (values?.time === '-') delete values.time;
  return values;
}

const parsers = {
  rfc3164,
  rfc5424: (text: string) => withoutNilTime(rfc5424(text)),
  auto: (text: string) => (/^<\d{1,3}>1 /.test(text) ? withoutNilTime(rfc5424(text)) : rfc3164(text)),
};

export function syslog(messageFormat: keyof typeof parsers = 'rfc3164', offset = 0): Format {
  // RFC 3339 (5424, or rsyslog's precise 3164) first, then BSD's `Oct 11 22:14:15`.
  const iso = valueTime('string', undefined, offset);
  const bsd = textTime(compileStrptime('%b %d %H:%M:%S', offset));
  return {
    parse: parsers[messageFormat],
    time: { key: 'time', read: (v) => iso(v) ?? bsd(v), keep: true },
  };
}
