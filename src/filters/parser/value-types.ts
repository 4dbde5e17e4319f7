import { fieldText } from '../checks.ts';
import { parseOffset } from './strptime.ts';
import { type TimeType, type ValueTime, valueTime } from './time.ts';

/**
 * `types`: what a parsed field becomes, as Fluentd's `types` (`status:integer,tags:array:|,
 * at:time:%d/%b/%Y`) or Fluent Bit's `Types` (`code:integer size:integer`) say it, or a map
 * (`{ status: integer, at: "time:%Y-%m-%d" }`). A value that does not convert becomes null
 * (Fluentd would make `abc` the integer 0, a number nobody sent).
 */
export type Converter = (value: unknown) => unknown;

const TYPES = ['string', 'integer', 'float', 'bool', 'time', 'array', 'hex'] as const;
const TRUTHY = new Set(['true', 'yes', '1']);

const asText = (v: unknown) => fieldText(v) ?? String(v);

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function integer(text: string, radix: 10 | 16): unknown {
  const m = (radix === 10 ? /^\s*([+-]?\d+)/ : /^\s*(?:0x)?([0-9a-f]+)\s*$/i).exec(text);
  if (!m) return null;
  const n = Number.parseInt(m[1]!, radix);
  if (Number.isSafeInteger(n)) return n;
  // msgpack carries 64-bit integers whole; Number would round them.
  const big = BigInt(radix === 16 ? `0x${m[1]}` : m[1]!);
  return big >= INT64_MIN && big <= INT64_MAX ? big : null;
}

function converter(type: (typeof TYPES)[number], option: string | undefined): Converter {
  switch (type) {
    case 'string':
      return asText;
    case 'integer':
      return (v) =>
        typeof v === 'number'
          ? Number.isFinite(v)
            ? Math.trunc(v)
            : null
          : typeof v === 'bigint'
            ? v
            : typeof v === 'string'
              ? integer(v, 10)
              : null;
    case 'hex':
      return (v) => (typeof v === 'string' ? integer(v, 16) : typeof v === 'number' ? v : null);
    case 'float':
      return (v) => {
        const n = typeof v === 'number' ? v : typeof v === 'string' ? Number.parseFloat(v) : Number.NaN;
        return Number.isFinite(n) ? n : null;
      };
    case 'bool':
      return (v) => (typeof v === 'boolean' ? v : TRUTHY.has(asText(v).trim().toLowerCase()));
    case 'array': {
      const delimiter = option || ',';
      return (v) => (Array.isArray(v) ? v : asText(v).split(delimiter));
    }
    case 'time': {
      const read = timeOption(option);
      return (v) => read(v) ?? null;
    }
  }
}

/** `time`, `time:unixtime`, `time:float`, `time:<strptime format>`, `time:<offset>:<format>`. */
function timeOption(option: string | undefined): ValueTime {
  if (option === undefined || option === '') return valueTime('string', undefined, 0);
  if (option === 'unixtime' || option === 'float') return valueTime(option as TimeType, undefined, 0);
  const m = /^([+-]\d{2}:?\d{2}|UTC|Z):(.*)$/.exec(option);
  if (m) return valueTime('string', m[2]!, parseOffset(m[1]!));
  return valueTime('string', option, 0);
}

// Between entries: a comma, or (Fluent Bit's form) spaces before the next `name:type`.
const SPLIT = new RegExp(String.raw`\s*,\s*|\s+(?=[^\s:,]+:(?:${TYPES.join('|')})(?::|\s|,|$))`);

/** The converters by field name; throws on an entry it cannot read (a config error). */
export function parseTypes(spec: string | Record<string, string>): Map<string, Converter> {
  const entries: [string, string][] =
    typeof spec === 'string'
      ? spec
          .trim()
          .split(SPLIT)
          .filter((s) => s !== '')
          .map((s) => {
            const at = s.indexOf(':');
            if (at <= 0) throw new Error(`expected name:type, got ${JSON.stringify(s)}`);
            return [s.slice(0, at), s.slice(at + 1)];
          })
      : Object.entries(spec);
  const out = new Map<string, Converter>();
  for (const [name, definition] of entries) {
    const at = definition.indexOf(':');
    const type = at < 0 ? definition : definition.slice(0, at);
    const option = at < 0 ? undefined : definition.slice(at + 1);
    if (!(TYPES as readonly string[]).includes(type))
      throw new Error(`${name}: unknown type ${JSON.stringify(type)} (expected ${TYPES.join(', ')})`);
    out.set(name, converter(type as (typeof TYPES)[number], option));
  }
  return out;
}
