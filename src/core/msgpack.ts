import { addExtension, Packr, Unpackr } from 'msgpackr';
import {
  ARRAY,
  BIN,
  BOOL,
  EXT,
  INT,
  MAP,
  NIL,
  newHeader,
  readHeader,
  STR,
} from '../protocol/forward/msgpack-scan.ts';
import { EventTime } from './event-time.ts';

/**
 * One msgpack configuration for the whole process: plain maps (no msgpackr records, so any
 * Fluentd peer can read what we write), 64-bit integers as numbers where a double holds them
 * exactly and as BigInt beyond (so an id of 2^64 − 1 is written back as it came), and Fluentd's EventTime
 * (ext type 0) decoded to `EventTime`.
 */
export const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
// 'auto' is in msgpackr 2 but not in its option types.
export const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: 'auto' as 'number',
});

// Fluentd's EventTime, ext type 0, both ways: a record holding one (a nested time a filter or
// a sender put there) is packed again as the same ext when a retry or a dead-letter replay
// re-encodes it, not as a map of its fields. addExtension refuses a falsy type on the pack
// side, so the 0 is given as the string '0': msgpackr only ever writes it into a byte array
// (which stores 0) and reads extensions back by it as a property key (the same as 0).
addExtension({
  Class: EventTime,
  type: '0' as unknown as number,
  pack(time: EventTime): Buffer {
    return eventTimeBytes(time).subarray(2);
  },
  unpack(data: Uint8Array): EventTime {
    if (data.length !== 8) throw new RangeError(`EventTime ext must be 8 bytes, got ${data.length}`);
    const view = new DataView(data.buffer, data.byteOffset, 8);
    return new EventTime(view.getUint32(0), view.getUint32(4));
  },
});

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
  try {
    return packr.pack(value);
  } catch (err) {
    // msgpackr recurses per level: a record nested a few thousand deep (forward takes up to
    // max_nesting_depth 10,000) overflows the stack. Such a record still has to be buffered,
    // re-encoded for a retry or dead-lettered, so it is encoded again without recursion.
    if (err instanceof RangeError) return packDeep(value);
    throw err;
  }
}

/**
 * msgpack without recursion, for values msgpackr cannot reach the bottom of: the same
 * encoding as `packr` for what decoded records hold (maps as plain objects with their own
 * keys, undefined as nil, integers outside 32 bits as float64, BigInt as 64-bit, Date as the
 * timestamp ext, binary as bin), walked with an explicit stack.
 */
export function packDeep(value: unknown): Buffer {
  const out = new ByteWriter();
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || v === undefined) out.byte(0xc0);
    else if (typeof v === 'boolean') out.byte(v ? 0xc3 : 0xc2);
    else if (typeof v === 'number') writeNumber(out, v);
    else if (typeof v === 'bigint') {
      // As msgpackr: int64 while it fits, uint64 above.
      out.byte(v < 2n ** 63n ? 0xd3 : 0xcf);
      out.bytes(bigintBytes(v));
    } else if (v instanceof EventTime) out.bytes(eventTimeBytes(v));
    else if (typeof v === 'string') writeStr(out, v);
    else if (v instanceof Uint8Array) {
      writeHeader(out, v.length, -1, 0xc4, 0xc5, 0xc6);
      out.bytes(v);
    } else if (v instanceof Date) {
      const ms = v.getTime();
      const sec = Math.floor(ms / 1000);
      const head = Buffer.alloc(15);
      head[0] = 0xc7;
      head[1] = 12;
      head[2] = 0xff;
      head.writeUInt32BE((ms - sec * 1000) * 1e6, 3);
      head.writeBigInt64BE(BigInt(sec), 7);
      out.bytes(head);
    } else if (Array.isArray(v)) {
      writeHeader(out, v.length, 0x90, -1, 0xdc, 0xdd);
      for (let i = v.length - 1; i >= 0; i--) stack.push(v[i]);
    } else if (typeof v === 'object') {
      const keys = Object.keys(v);
      writeHeader(out, keys.length, 0x80, -1, 0xde, 0xdf);
      for (let i = keys.length - 1; i >= 0; i--) {
        stack.push((v as Record<string, unknown>)[keys[i]!]);
        stack.push(keys[i]);
      }
    } else {
      out.byte(0xc0);
    }
  }
  return out.result();
}

class ByteWriter {
  private buf = Buffer.allocUnsafe(1024);
  private n = 0;

  private room(size: number): void {
    if (this.n + size <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + size));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }

  byte(b: number): void {
    this.room(1);
    this.buf[this.n++] = b;
  }

  bytes(data: Uint8Array): void {
    this.room(data.length);
    this.buf.set(data, this.n);
    this.n += data.length;
  }

  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n));
  }
}

/** A length header: fix form (`fix` < 0: none) up to 15 / 31 items, then 8-, 16- or 32-bit (`b8` < 0: none). */
function writeHeader(
  out: ByteWriter,
  length: number,
  fix: number,
  b8: number,
  b16: number,
  b32: number,
): void {
  const fixMax = fix === 0xa0 ? 31 : 15;
  const head = Buffer.allocUnsafe(5);
  if (fix >= 0 && length <= fixMax) {
    out.byte(fix | length);
  } else if (b8 >= 0 && length <= 0xff) {
    out.byte(b8);
    out.byte(length);
  } else if (length <= 0xffff) {
    head[0] = b16;
    head.writeUInt16BE(length, 1);
    out.bytes(head.subarray(0, 3));
  } else {
    head[0] = b32;
    head.writeUInt32BE(length, 1);
    out.bytes(head);
  }
}

function writeStr(out: ByteWriter, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  writeHeader(out, bytes.length, 0xa0, 0xd9, 0xda, 0xdb);
  out.bytes(bytes);
}

function writeNumber(out: ByteWriter, v: number): void {
  out.bytes(numberBytes(v));
}

function numberBytes(v: number): Uint8Array {
  const head = Buffer.allocUnsafe(9);
  if (v >>> 0 === v) {
    if (v < 0x80) return Buffer.from([v]);
    if (v < 0x100) return Buffer.from([0xcc, v]);
    if (v < 0x10000) {
      head[0] = 0xcd;
      head.writeUInt16BE(v, 1);
      return head.subarray(0, 3);
    }
    head[0] = 0xce;
    head.writeUInt32BE(v, 1);
    return head.subarray(0, 5);
  }
  if (v >> 0 === v) {
    if (v >= -0x20) return Buffer.from([v & 0xff]);
    if (v >= -0x80) return Buffer.from([0xd0, v & 0xff]);
    if (v >= -0x8000) {
      head[0] = 0xd1;
      head.writeInt16BE(v, 1);
      return head.subarray(0, 3);
    }
    head[0] = 0xd2;
    head.writeInt32BE(v, 1);
    return head.subarray(0, 5);
  }
  head[0] = 0xcb;
  head.writeDoubleBE(v, 1);
  return head;
}

function bigintBytes(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  if (v < 2n ** 63n) b.writeBigInt64BE(BigInt.asIntN(64, v));
  else b.writeBigUInt64BE(BigInt.asUintN(64, v));
  return b;
}

export function unpack(data: Uint8Array): unknown {
  return unpackr.unpack(data);
}

/** Every value of a concatenated msgpack stream. */
export function unpackStream(data: Uint8Array): unknown[] {
  if (data.length === 0) return [];
  try {
    return unpackr.unpackMultiple(data) as unknown[];
  } catch (err) {
    // msgpackr recurses per level too: a record buffered from forward (max_nesting_depth up to
    // 10,000) may be deeper than it can decode. Without recursion, so an output gets it, and
    // can refuse it alone if it cannot encode it either.
    if (err instanceof RangeError && /call stack/i.test(err.message)) return unpackDeep(data);
    throw err;
  }
}

/**
 * Decodes like `unpackr` (maps as plain objects with string keys and `__proto__` renamed
 * `__proto_` as msgpackr does, 64-bit integers as `unpackr` gives them, bin as Buffer, ext 0 as EventTime,
 * ext -1 as Date) with an explicit stack instead of recursion. Throws on anything unpackr would.
 */
export function unpackDeep(data: Uint8Array): unknown[] {
  const values: unknown[] = [];
  const h = newHeader();
  const end = data.length;
  /** Open containers, innermost last. */
  const open: Open[] = [];
  let pos = 0;
  while (pos < end) {
    const at = pos;
    const next = readHeader(data, pos, end, h);
    if (next < 0) throw new RangeError(`msgpack value cut short at offset ${pos}`);
    let value: unknown;
    let container: Open | undefined;
    pos = next;
    switch (h.type) {
      case STR:
      case BIN:
      case EXT: {
        if (pos + h.length > end) throw new RangeError(`msgpack value cut short at offset ${pos}`);
        const body = data.subarray(pos, pos + h.length);
        pos += h.length;
        if (h.type === STR)
          value = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
        else if (h.type === BIN) value = Buffer.from(body);
        else value = extValue(h.value, body);
        break;
      }
      case ARRAY:
        container = { target: [], left: h.length, key: undefined, map: false };
        break;
      case MAP:
        container = { target: {}, left: h.length * 2, key: undefined, map: true };
        break;
      case NIL:
        value = null;
        break;
      case BOOL:
        value = h.value === 1;
        break;
      default:
        value = h.value;
        if (h.type === INT && next - at === 9) value = int64Value(data, at);
    }
    if (container) {
      value = container.target;
      place(open, values, value);
      if (container.left > 0) open.push(container);
      else closeDone(open);
      continue;
    }
    place(open, values, value);
    closeDone(open);
  }
  return values;
}

/** A uint64 / int64 at `at` as `unpackr` gives it: a number within ±2^53, else a BigInt. */
function int64Value(data: Uint8Array, at: number): number | bigint {
  const view = new DataView(data.buffer, data.byteOffset + at + 1, 8);
  const big = data[at] === 0xcf ? view.getBigUint64(0) : view.getBigInt64(0);
  return big >= -(2n ** 53n) && big <= 2n ** 53n ? Number(big) : big;
}

interface Open {
  target: unknown[] | Record<string, unknown>;
  /** Items still to come (keys and values both, for a map). */
  left: number;
  /** A map's key waiting for its value. */
  key: string | undefined;
  map: boolean;
}

function place(open: Open[], values: unknown[], value: unknown): void {
  const top = open[open.length - 1];
  if (!top) {
    values.push(value);
    return;
  }
  top.left -= 1;
  if (!top.map) {
    (top.target as unknown[]).push(value);
  } else if (top.key === undefined) {
    const key = String(value);
    top.key = key === '__proto__' ? '__proto_' : key;
  } else {
    (top.target as Record<string, unknown>)[top.key] = value;
    top.key = undefined;
  }
}

/** Closes every container whose last item just came. */
function closeDone(open: Open[]): void {
  while (open.length > 0 && open[open.length - 1]!.left === 0) open.pop();
}

function extValue(type: number, body: Uint8Array): unknown {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (type === 0 && body.length === 8) return new EventTime(view.getUint32(0), view.getUint32(4));
  if (type === -1) {
    if (body.length === 4) return new Date(view.getUint32(0) * 1000);
    if (body.length === 8) {
      const nsec = view.getUint32(0) >>> 2;
      const sec = (view.getUint32(0) & 0x3) * 2 ** 32 + view.getUint32(4);
      return new Date(sec * 1000 + Math.round(nsec / 1e6));
    }
    if (body.length === 12)
      return new Date(Number(view.getBigInt64(4)) * 1000 + Math.round(view.getUint32(0) / 1e6));
  }
  throw new RangeError(`unsupported msgpack ext type ${type} of ${body.length} bytes`);
}
