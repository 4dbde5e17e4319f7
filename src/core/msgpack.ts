import { addExtension, Packr, Unpackr } from 'msgpackr';
import { EventTime } from './event-time.ts';

/**
 * One msgpack configuration for the whole process: plain maps (no msgpackr records, so any
 * Fluentd peer can read what we write), 64-bit integers as numbers, and Fluentd's EventTime
 * (ext type 0) decoded to `EventTime`.
 */
export const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
export const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

// msgpackr refuses `pack` for ext type 0 (falsy type), so encoding is done by hand in
// `writeEventTime`; decoding registers normally.
addExtension({
  type: 0,
  unpack(data: Uint8Array): EventTime {
    if (data.length !== 8) throw new RangeError(`EventTime ext must be 8 bytes, got ${data.length}`);
    const view = new DataView(data.buffer, data.byteOffset, 8);
    return new EventTime(view.getUint32(0), view.getUint32(4));
  },
} as Parameters<typeof addExtension>[0]);

/** fixext8 header (0xd7), type 0, then seconds and nanoseconds big-endian. */
export function eventTimeBytes(time: EventTime): Buffer {
  const out = Buffer.allocUnsafe(10);
  out[0] = 0xd7;
  out[1] = 0x00;
  out.writeUInt32BE(time.sec >>> 0, 2);
  out.writeUInt32BE(time.nsec >>> 0, 6);
  return out;
}

export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

export function unpack(data: Uint8Array): unknown {
  return unpackr.unpack(data);
}

/** Every value of a concatenated msgpack stream. */
export function unpackStream(data: Uint8Array): unknown[] {
  if (data.length === 0) return [];
  return unpackr.unpackMultiple(data) as unknown[];
}
