import { EventTime } from './event-time.ts';

/** A log record: Fluentd's map of string keys to any msgpack value. */
export type LogRecord = Record<string, unknown>;

export interface Entry {
  time: EventTime;
  record: LogRecord;
  /** Fluent Bit ≥ 2.1 metadata (`[[time, metadata], record]`); absent for plain entries. */
  metadata?: LogRecord;
}

/** An entry with the tag it was emitted under, as outputs see it. */
export interface TaggedEntry extends Entry {
  tag: string;
}

/**
 * A msgpack/JSON map, as opposed to an array, binary, an EventTime, a timestamp (the decoder
 * gives a Date) or a scalar.
 */
export function isLogRecord(value: unknown): value is LogRecord {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array) &&
    !(value instanceof EventTime) &&
    !(value instanceof Date)
  );
}
