import {
  ARRAY,
  EXT,
  FLOAT,
  INT,
  MAP,
  NIL,
  newHeader,
  readHeader,
  skipValue,
  u32,
} from '../protocol/forward/msgpack-scan.ts';
import { decodeEntries } from './batch.ts';
import type { TaggedEntry } from './entry.ts';
import { InputError } from './errors.ts';
import { EventTime, FLUENT_BIT_GROUP_END, FLUENT_BIT_GROUP_START } from './event-time.ts';

/**
 * Walks the entries of a batch payload (`[time, record]` or `[[time, metadata], record]`)
 * without decoding them: each step gives the entry's time and where its record and
 * metadata lie, so an output can write them from the bytes. What it accepts and skips is
 * what `decodeEntries` accepts and skips (Fluent Bit group markers carry no record).
 */
export class EntryCursor {
  /** Where the entry starts: `payload.subarray(start, end)` is one msgpack value. */
  start = 0;
  sec = 0;
  nsec = 0;
  recordStart = 0;
  /** -1 when the entry has no metadata. */
  metaStart = -1;
  metaEnd = -1;
  readonly payload: Uint8Array;
  /** Where the next entry starts once known (-1: after the current record and extra items). */
  private nextAt = 0;
  /** -1 until someone needs it: a writer that went through the record reports it instead. */
  private knownRecordEnd = -1;
  private extraItems = 0;
  private readonly h = newHeader();

  constructor(payload: Uint8Array) {
    this.payload = payload;
  }

  /** Where the record ends (found by walking it, unless a writer already did). */
  get recordEnd(): number {
    if (this.knownRecordEnd < 0)
      this.knownRecordEnd = skipValue(
        this.payload,
        this.recordStart,
        this.payload.length,
        Number.POSITIVE_INFINITY,
      );
    return this.knownRecordEnd;
  }

  /** The record was written through and ends at `end`: no second walk to find it. */
  recordEndsAt(end: number): void {
    this.knownRecordEnd = end;
  }

  /** Where the entry ends. */
  get end(): number {
    if (this.nextAt < 0) {
      let p = this.recordEnd;
      for (let i = 0; i < this.extraItems; i++)
        p = skipValue(this.payload, p, this.payload.length, Number.POSITIVE_INFINITY);
      this.nextAt = p;
    }
    return this.nextAt;
  }

  /** Moves to the next entry; false at the end. Throws InputError on what is not an entry. */
  next(): boolean {
    const src = this.payload;
    const end = src.length;
    for (;;) {
      const at = this.end;
      if (at >= end) return false;
      const h = this.h;
      this.start = at;
      let p = readHeader(src, at, end, h);
      if (p < 0 || h.type !== ARRAY || h.length < 2)
        throw new InputError('entry is not a [time, record] array');
      this.extraItems = h.length - 2;
      this.metaStart = -1;
      this.metaEnd = -1;
      // The time, or [time, metadata].
      const headAt = p;
      p = readHeader(src, headAt, end, h);
      if (p < 0) throw noTime();
      if (h.type === ARRAY) {
        const headItems = h.length;
        if (headItems === 0) throw noTime();
        p = this.readTime(p, end);
        if (headItems >= 2) {
          const metaAt = p;
          p = readHeader(src, metaAt, end, h);
          if (h.type === MAP) {
            this.metaStart = metaAt;
            this.metaEnd = p = skipValue(src, metaAt, end, Number.POSITIVE_INFINITY);
          } else if (h.type !== NIL) {
            throw new InputError('entry metadata is not a map');
          }
          for (let i = 2; i < headItems; i++) p = skipValue(src, p, end, Number.POSITIVE_INFINITY);
        }
      } else {
        p = this.readTime(headAt, end);
      }
      this.recordStart = p;
      this.knownRecordEnd = -1;
      this.nextAt = -1;
      if (readHeader(src, p, end, h) < 0) throw new InputError('entry has no record');
      const isGroupMarker = this.sec === FLUENT_BIT_GROUP_START || this.sec === FLUENT_BIT_GROUP_END;
      if (!isGroupMarker) {
        if (h.type !== MAP) throw new InputError('entry record is not a map');
        return true;
      }
    }
  }

  /** This entry decoded, for the rare paths that need objects (a rejection, a retry). */
  decode(tag: string): TaggedEntry {
    const [entry] = decodeEntries(this.payload.subarray(this.start, this.end));
    return { ...entry!, tag };
  }

  /** The time at `p` as decodeEntries reads it: EventTime, or non-negative integer or float seconds. */
  private readTime(p: number, end: number): number {
    const src = this.payload;
    const h = this.h;
    const next = readHeader(src, p, end, h);
    if (next >= 0 && h.type === EXT && h.value === 0 && h.length === 8 && next + 8 <= end) {
      this.sec = u32(src, next);
      this.nsec = u32(src, next + 4);
      return next + 8;
    }
    if (next >= 0 && (h.type === INT || h.type === FLOAT) && Number.isFinite(h.value) && h.value >= 0) {
      const time = Number.isInteger(h.value) ? new EventTime(h.value, 0) : EventTime.fromSeconds(h.value);
      this.sec = time.sec;
      this.nsec = time.nsec;
      return next;
    }
    throw noTime();
  }
}

function noTime(): InputError {
  return new InputError('entry time is not an integer, float or EventTime');
}

/** A range of whole entries of one batch: enough to decode them again if they must be retried. */
export interface EntrySpan {
  readonly tag: string;
  readonly payload: Uint8Array;
  start: number;
  end: number;
}

/** The entries of spans, decoded (for retries and rejections only). */
export function decodeSpans(spans: readonly EntrySpan[]): TaggedEntry[] {
  const out: TaggedEntry[] = [];
  for (const span of spans) {
    for (const entry of decodeEntries(span.payload.subarray(span.start, span.end)))
      out.push({ ...entry, tag: span.tag });
  }
  return out;
}
