import { z } from 'zod';
import { DEFAULT_TIME_KEY_FORMAT, type RecordFormat } from './encode.ts';

/** The per-record options firehose and kinesis_streams share (Fluent Bit's names), spread into each schema. */
export const recordFields = {
  /** Add the record's time under this key (a record that has the key keeps its own). */
  time_key: z.string().min(1).optional(),
  /** strftime for time_key, UTC; `%L` or `%3N` milliseconds, `%N` or `%9N` nanoseconds. */
  time_key_format: z.string().min(1).default(DEFAULT_TIME_KEY_FORMAT),
  /** Send only this field of each record, a string as it is (Docker's `log`), anything else as JSON. */
  log_key: z.string().min(1).optional(),
  /** Replace `.` in every key (at every depth) with this, e.g. `_`. */
  replace_dots: z.string().optional(),
  /** A record over the sink's per-record limit: `reject` (dead-letter it) or `truncate` (cut it to fit). */
  oversize: z.enum(['reject', 'truncate']).default('reject'),
} as const;

type RecordFields = z.output<z.ZodObject<typeof recordFields>>;

/** Cross-key rules of the record options, for an output's `superRefine`. */
export function checkRecordFields(c: RecordFields, issue: (key: string, message: string) => void): void {
  if (c.log_key === undefined) return;
  // The record is not sent with log_key: a field added to it or a key renamed in it would not show.
  if (c.time_key !== undefined)
    issue('time_key', 'time_key has no effect with log_key (only that field is sent)');
  if (c.replace_dots !== undefined)
    issue('replace_dots', 'replace_dots has no effect with log_key (only that field is sent)');
}

export function recordFormat(c: RecordFields & { append_newline: boolean }): RecordFormat {
  return {
    timeKey: c.time_key,
    timeKeyFormat: c.time_key_format,
    logKey: c.log_key,
    appendNewline: c.append_newline,
    replaceDots: c.replace_dots,
  };
}
