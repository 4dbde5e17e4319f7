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
  /** The entry's bytes: `payload.subarray(start, end)` is one msgpack value. */
  start = 0;
  end = 0;
  sec = 0;
  nsec = 0;
  recordStart = 0;
  recordEnd = 0;
  /** -1 when the entry has no metadata. */
  metaStart = -1;
  metaEnd = -1;
  private pos = 0;
  private readonly h = newHeader();
  readonly payload: Uint8Array;

  constructor(payload: Uint8Array) {
    this.payload = payload;
  }

  /** Moves to the next entry; false at the end. Throws InputError on what is not an entry. */
  next(): boolean {
    const src = this.payload;
    const end = src.length;
    for (;;) {
      if (this.pos >= end) return false;
      const h = this.h;
      this.start = this.pos;
      let p = readHeader(src, this.pos, end, h);
      if (p < 0 || h.type !== ARRAY || h.length < 2)
        throw new InputError('entry is not a [time, record] array');
      const items = h.length;
      this.metaStart = -1;
      this.metaEnd = -1;
      // The time, or [time, metadata].
      const headAt = p;
      p = readHeader(src, headAt, end, h);
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
      readHeader(src, p, end, h);
      const isGroupMarker = this.sec === FLUENT_BIT_GROUP_START || this.sec === FLUENT_BIT_GROUP_END;
      if (h.type !== MAP && !isGroupMarker) throw new InputError('entry record is not a map');
      p = this.recordEnd = skipValue(src, p, end, Number.POSITIVE_INFINITY);
      for (let i = 2; i < items; i++) p = skipValue(src, p, end, Number.POSITIVE_INFINITY);
      this.end = this.pos = p;
      if (!isGroupMarker) return true;
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
    if (h.type === EXT && h.value === 0 && h.length === 8 && next + 8 <= end) {
      this.sec = u32(src, next);
      this.nsec = u32(src, next + 4);
      return next + 8;
    }
    if ((h.type === INT || h.type === FLOAT) && Number.isFinite(h.value) && h.value >= 0) {
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

function u32(src: Uint8Array, at: number): number {
  return src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
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
