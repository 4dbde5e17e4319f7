import { isUtf8 } from 'node:buffer';
import { EntryCursor, type EntrySpan } from '../../core/entry-cursor.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { refusalReason } from '../aws-records/encode.ts';
import { outputSizeHint } from '../format.ts';
import type { Chunk, Rejection } from '../output.ts';
import type { Destination, Destinations } from './names.ts';

/**
 * A chunk's records → CloudWatch log events, arranged for PutLogEvents:
 *
 *   records ─► message bytes (JSON, log_key or EMF) + timestamp (ms) + destination
 *           ─► over 1 MiB with its 26 bytes: rejected, or truncated with a marker
 *           ─► per destination, sorted by time (a call must be in order), and cut into
 *              24-hour windows (a call may not span more): the `call` group of each event
 *
 * The request layer (delivery/request.ts) then cuts each group into calls of at most 10,000
 * events and 1,048,576 bytes, counting each message's UTF-8 bytes + 26.
 */

export const LIMITS = {
  events: 10_000,
  callBytes: 1_048_576,
  /** CloudWatch counts this much on top of each message's bytes. */
  eventOverhead: 26,
  /** One event, message + 26. */
  eventBytes: 1_048_576,
  /** First to last event of a call. */
  spanMs: 24 * 60 * 60 * 1000,
} as const;

/** Appends one record's message; throws why it cannot, the same on every try, leaving `out` as it was. */
export interface MessageWriter {
  write(out: JsonBuffer, tag: string, cursor: EntryCursor): void;
}

export interface LogEvent {
  /** Milliseconds since the epoch: the event's `timestamp`. */
  readonly time: number;
  /** The message's bytes in the chunk's buffer. */
  readonly start: number;
  readonly end: number;
  /** The entry in its batch: decoded only when it comes back (a retry, a rejection). */
  readonly span: EntrySpan;
  readonly dest: Destination;
  /** Events of one call group share a destination and a 24-hour window. */
  call: string;
}

export interface Encoded {
  bytes: Buffer;
  /** Grouped by destination, each in time order. */
  events: LogEvent[];
  rejected: Rejection[];
  truncated: number;
}

export interface EncodeOptions {
  writer: MessageWriter;
  destinations: Destinations;
  oversize: 'reject' | 'truncate';
  /** log_key writes a field's bytes as they are: they may not be UTF-8. */
  checkUtf8: boolean;
}

const MARKER = Buffer.from('[truncated]');

export function encodeEvents(chunk: Chunk, o: EncodeOptions): Encoded {
  const out = new JsonBuffer(outputSizeHint(chunk.bytes));
  const byDest = new Map<Destination, LogEvent[]>();
  const rejected: Rejection[] = [];
  let truncated = 0;
  const maxMessage = LIMITS.eventBytes - LIMITS.eventOverhead;
  for (const batch of chunk.batches) {
    const cursor = new EntryCursor(batch.payload);
    while (cursor.next()) {
      const start = out.n;
      let dest: Destination;
      try {
        dest = o.destinations.of(batch.tag, cursor);
        o.writer.write(out, batch.tag, cursor);
      } catch (err) {
        // Pure: what fails once (no log_key field, an unknown ext type) fails every time.
        rejected.push({ entry: cursor.decode(batch.tag), reason: refusalReason(err) });
        continue;
      }
      if (o.checkUtf8 && !isUtf8(out.buf.subarray(start, out.n))) {
        // The SDK sends text: the bytes as the text they decode to, so they are counted right.
        const text = out.buf.toString('utf8', start, out.n);
        out.n = start;
        out.utf8(text);
      }
      const size = out.n - start;
      if (size === 0) {
        rejected.push({
          entry: cursor.decode(batch.tag),
          reason: 'an empty message: CloudWatch Logs takes no empty event',
        });
        continue;
      }
      if (size > maxMessage) {
        if (o.oversize === 'reject') {
          out.n = start;
          rejected.push({
            entry: cursor.decode(batch.tag),
            reason: `an event of ${size + LIMITS.eventOverhead} bytes (message + 26) is over CloudWatch Logs' limit of ${LIMITS.eventBytes} bytes per event`,
          });
          continue;
        }
        out.n = utf8Boundary(out.buf, start, start + maxMessage - MARKER.length);
        out.bytes(MARKER);
        truncated += 1;
      }
      let events = byDest.get(dest);
      if (!events) {
        events = [];
        byDest.set(dest, events);
      }
      events.push({
        time: cursor.sec * 1000 + Math.floor(cursor.nsec / 1e6),
        start,
        end: out.n,
        span: { tag: batch.tag, payload: batch.payload, start: cursor.start, end: cursor.end },
        dest,
        call: dest.key,
      });
    }
  }
  const events: LogEvent[] = [];
  for (const group of byDest.values()) events.push(...inTimeWindows(group));
  return { bytes: out.view(), events, rejected, truncated };
}

/**
 * One destination's events in time order (stable: events of one millisecond keep theirs),
 * each call group spanning less than 24 hours: windows of 24 hours from the first event.
 */
function inTimeWindows(events: LogEvent[]): LogEvent[] {
  let sorted = true;
  for (let i = 1; i < events.length && sorted; i++) sorted = events[i - 1]!.time <= events[i]!.time;
  if (!sorted) events.sort((a, b) => a.time - b.time);
  const first = events[0]!.time;
  if (events[events.length - 1]!.time - first < LIMITS.spanMs) return events;
  for (const e of events) {
    const window = Math.floor((e.time - first) / LIMITS.spanMs);
    if (window > 0) e.call = `${e.dest.key}\u0000${window}`;
  }
  return events;
}

/** The largest position ≤ `at` (and ≥ `start`) that does not split a UTF-8 character. */
function utf8Boundary(buf: Buffer, start: number, at: number): number {
  let p = Math.max(start, at);
  while (p > start && (buf[p]! & 0xc0) === 0x80) p--;
  return p;
}
