import { type Entry, isLogRecord, type LogRecord } from './entry.ts';
import { InputError } from './errors.ts';
import { EventTime, FLUENT_BIT_GROUP_END, FLUENT_BIT_GROUP_START } from './event-time.ts';
import { eventTimeBytes, pack, unpackStream } from './msgpack.ts';

/**
 * Records travel encoded: a msgpack stream of `[time, record]` (or Fluent Bit's
 * `[[time, metadata], record]`), exactly the PackedForward entry format. Decoding happens
 * only where a filter or an output needs the records.
 */
export interface Batch {
  readonly tag: string;
  readonly payload: Uint8Array;
  readonly count: number;
  readonly bytes: number;
}

const FIXARRAY_2 = Buffer.from([0x92]);

export function encodeEntry(entry: Entry): Buffer {
  const time = eventTimeBytes(entry.time);
  const record = pack(entry.record);
  if (entry.metadata === undefined) return Buffer.concat([FIXARRAY_2, time, record]);
  return Buffer.concat([FIXARRAY_2, FIXARRAY_2, time, pack(entry.metadata), record]);
}

export function makeBatch(tag: string, entries: readonly Entry[]): Batch {
  const payload = Buffer.concat(entries.map(encodeEntry));
  return { tag, payload, count: entries.length, bytes: payload.length };
}

/** Accepts integer seconds, float seconds or an EventTime, as Fluentd peers send them. */
export function toEventTime(value: unknown): EventTime | undefined {
  if (value instanceof EventTime) return value;
  // Past 2^53 the decoder gives a BigInt; read as EntryCursor reads it, so both agree.
  if (typeof value === 'bigint') return value >= 0n ? new EventTime(Number(value), 0) : undefined;
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) {
    return Number.isInteger(value) ? new EventTime(value, 0) : EventTime.fromSeconds(value);
  }
  return undefined;
}

/**
 * One decoded stream item → an Entry; `null` for Fluent Bit group markers, which carry no
 * record. Throws InputError on anything that is not an entry.
 */
export function toEntry(item: unknown): Entry | null {
  if (!Array.isArray(item) || item.length < 2) throw new InputError('entry is not a [time, record] array');
  const [head, record] = item as [unknown, unknown];
  let time: EventTime | undefined;
  let metadata: LogRecord | undefined;
  if (Array.isArray(head)) {
    time = toEventTime(head[0]);
    if (head[1] !== undefined && head[1] !== null) {
      if (!isLogRecord(head[1])) throw new InputError('entry metadata is not a map');
      metadata = head[1];
    }
  } else {
    time = toEventTime(head);
  }
  if (!time) throw new InputError('entry time is not an integer, float or EventTime');
  if (time.sec === FLUENT_BIT_GROUP_START || time.sec === FLUENT_BIT_GROUP_END) return null;
  if (!isLogRecord(record)) throw new InputError('entry record is not a map');
  return metadata === undefined ? { time, record } : { time, record, metadata };
}

export function decodeEntries(payload: Uint8Array): Entry[] {
  const out: Entry[] = [];
  for (const item of unpackStream(payload)) {
    const entry = toEntry(item);
    if (entry) out.push(entry);
  }
  return out;
}
