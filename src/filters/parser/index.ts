import type { Entry, LogRecord } from '../../core/entry.ts';
import { getPath, parseRecordPath, withoutPath } from '../../core/record-path.ts';
import { rateLimited } from '../../logger.ts';
import { defineComponent } from '../../registry.ts';
import type { Emission, Filter } from '../filter.ts';
import { buildParser, type Parsed } from './build.ts';
import { type ParserConfig, schema } from './config.ts';
import type { Values } from './format.ts';

/** A key_name value as the text to parse; undefined when it is no text (a map, a number). */
function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return undefined;
}

/** Whether `text` is longer than `max` bytes, without encoding it when its length settles it. */
function tooLong(text: string, max: number): boolean {
  if (text.length > max) return true;
  if (text.length * 3 <= max) return false;
  return Buffer.byteLength(text) > max;
}

/** One trailing newline (Docker's `log` ends with one), which Ruby's `$` would match before. */
function chomp(text: string): string {
  if (!text.endsWith('\n')) return text;
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.slice(0, -1);
}

/** `record[key] = value`, where a `__proto__` key is a field (as in a spread), not the prototype. */
function put(record: LogRecord, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/**
 * The parsed record, as Fluentd's filter_parser and Fluent Bit's parser build it: the parsed
 * fields (prefixed, or under hash_value_field), over the original ones with reserve_data.
 */
function assemble(c: ParserConfig, path: readonly string[], record: LogRecord, parsed: Values): LogRecord {
  let values = parsed;
  if (c.inject_key_prefix !== undefined) {
    const prefixed: Values = {};
    for (const [k, v] of Object.entries(values)) prefixed[c.inject_key_prefix + k] = v;
    values = prefixed;
  }
  if (c.hash_value_field !== undefined) values = { [c.hash_value_field]: values };
  if (!c.reserve_data) return values;
  // Fluent Bit drops key_name unless preserve_key; remove_key_name_field: false keeps it too.
  const keepKey = c.preserve_key ?? c.remove_key_name_field === false;
  if (keepKey || path.length > 1) return { ...(keepKey ? record : withoutPath(record, path)), ...values };
  // One copy, without key_name, rather than a copy less the key and a second with the values.
  const out: LogRecord = {};
  const drop = path[0]!;
  for (const key of Object.keys(record)) if (key !== drop) put(out, key, record[key]);
  for (const key of Object.keys(values)) put(out, key, values[key]);
  return out;
}

/**
 * Fluentd's `filter_parser` / Fluent Bit's `parser`: reads the text at `key_name` with a format
 * and makes the record of its fields, the line's time the record time. A record that does not
 * parse passes on unchanged and is counted; with emit_invalid_record_to_error it goes to the
 * dead-letter queue of the outputs its tag routes to, with the reason, instead.
 */
export const parserFilter = defineComponent({
  kind: 'filter',
  type: 'parser',
  schema,
  create(config, deps): Filter {
    const path = parseRecordPath(config.key_name);
    // The schema has checked that exactly one of the two is set.
    const format = (config.format ?? config.parser)!;
    const parse = buildParser({ ...config, format });
    const labels = { plugin_id: deps.id, type: 'parser' };
    // Once a minute at most each: a stream of bad lines must not become a stream of log lines.
    const logEvery = (level: 'warn' | 'debug', message: string) =>
      rateLimited(60_000, (suppressed: number, fields: Record<string, unknown>) =>
        deps.logger[level]({ filter: deps.id, ...fields, ...(suppressed ? { suppressed } : {}) }, message),
      );
    const warnDead = logEvery(
      'warn',
      'parser: record dead-lettered, it does not parse (emit_invalid_record_to_error)',
    );
    const noteFailed = logEvery('debug', 'parser: record passed on unparsed');
    const badTime = logEvery(
      'warn',
      'parser: the time field does not read as a time; it stays in the record, which keeps its time',
    );
    const failed = (entry: Entry, reason: string): Entry | readonly Emission[] => {
      deps.metrics.filterParseErrors.inc(labels);
      if (!config.emit_invalid_record_to_error) {
        noteFailed({ reason });
        return entry;
      }
      warnDead({ reason });
      return [{ entry, reject: `${deps.id}: ${reason}` }];
    };
    return {
      id: deps.id,
      type: 'parser',
      apply(entry) {
        const value = getPath(entry.record, path);
        // Nothing to parse is no parse error: the record was not meant for this filter.
        if (value === undefined || value === null) return entry;
        const text = textOf(value);
        if (text === undefined) return failed(entry, `${config.key_name} is not text`);
        if (tooLong(text, config.max_bytes))
          return failed(entry, `${config.key_name} is longer than max_bytes (${config.max_bytes})`);
        const parsed: Parsed | undefined = parse(chomp(text));
        if (!parsed) return failed(entry, `${config.key_name} is not ${format}`);
        if (parsed.badTime !== undefined) badTime({ value: String(parsed.badTime).slice(0, 100) });
        const out: Entry = {
          time: config.reserve_time ? entry.time : (parsed.time ?? entry.time),
          record: assemble(config, path, entry.record, parsed.values),
        };
        if (entry.metadata) out.metadata = entry.metadata;
        return out;
      },
    };
  },
});
