import { FrameError } from './errors.ts';
import { ScanState } from './msgpack-scan.ts';

/**
 * Streaming framers for one connection: bytes in as they arrive, complete top-level values
 * out. Several messages in one read and one message over many reads both work; a message is
 * scanned once however it is split (the scan resumes where the bytes ran out), and the
 * memory held is the unfinished message only — never more than `maxMessageSize` plus one
 * read, since a length prefix over the limit is refused as soon as its header arrives.
 */

export interface FrameLimits {
  /** Largest message, in bytes. */
  maxMessageSize: number;
  /** Deepest nesting of arrays and maps in a message. */
  maxDepth: number;
}

export interface FrameDecoder {
  readonly format: 'msgpack' | 'json';
  /**
   * Feeds bytes; calls `onFrame` for each complete message, in order. A frame is a view that
   * stays valid until the next `push`. Throws FrameError after the frames before the fault.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void;
  /** Bytes of an unfinished message held. */
  readonly pending: number;
}

/** Fluentd's rule: a connection whose first byte is `{` or `[` speaks JSON, any other msgpack. */
export function createFrameDecoder(firstByte: number, limits: FrameLimits): FrameDecoder {
  return firstByte === 0x7b || firstByte === 0x5b
    ? new JsonFrameDecoder(limits)
    : new MsgpackFrameDecoder(limits);
}

/**
 * Bytes of a message not yet complete, grown as needed and dropped when idle. Consumed bytes
 * are only moved away at the next append, so frames handed out stay valid until then.
 */
class Carry {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  get bytes(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }

  append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    const need = held + chunk.length;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2, 4096));
      this.buf.copy(grown, 0, this.start, this.end);
      this.buf = grown;
    } else if (this.start > 0) {
      this.buf.copy(this.buf, 0, this.start, this.end);
    }
    this.start = 0;
    this.end = held;
    this.buf.set(chunk, this.end);
    this.end = need;
  }

  /** Drops the first `count` held bytes. */
  consume(count: number): void {
    this.start += count;
    if (this.start < this.end) return;
    this.start = 0;
    this.end = 0;
    // A connection idle between messages holds nothing big (frames still out keep theirs).
    if (this.buf.length > 64 * 1024) this.buf = Buffer.alloc(0);
  }
}

export class MsgpackFrameDecoder implements FrameDecoder {
  readonly format = 'msgpack';
  private readonly limits: FrameLimits;
  private readonly state = new ScanState();
  private readonly carry = new Carry();

  constructor(limits: FrameLimits) {
    this.limits = limits;
  }

  get pending(): number {
    return this.carry.length;
  }

  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    // Nothing carried: frame straight from the read, copying only an unfinished tail.
    if (this.carry.length === 0) {
      const done = this.frames(chunk, onFrame);
      if (done < chunk.length) this.carry.append(chunk.subarray(done));
      return;
    }
    this.carry.append(chunk);
    const bytes = this.carry.bytes;
    const done = this.frames(bytes, onFrame);
    this.carry.consume(done);
  }

  /** Emits the complete values of `buf` (whose start is a value's start); returns where the rest begins. */
  private frames(buf: Uint8Array, onFrame: (frame: Uint8Array) => void): number {
    const { maxDepth, maxMessageSize } = this.limits;
    // The scan state's position is relative to `buf`, which always starts at an unfinished value.
    let start = 0;
    while (start < buf.length) {
      const end = this.state.scan(buf, start, buf.length, maxDepth, maxMessageSize, start);
      if (end < 0) {
        // The caller keeps bytes from `start` on, moved to offset 0: so does the scan.
        this.state.pos -= start;
        return start;
      }
      onFrame(buf.subarray(start, end));
      start = end;
    }
    return start;
  }
}

/** Where the JSON scanner is: between values, inside one, inside a string, after a backslash. */
const J = { Between: 0, Value: 1, Str: 2, Escape: 3 } as const;
type JState = (typeof J)[keyof typeof J];

/**
 * JSON values back to back (Fluentd reads them with a streaming Yajl parser). Finds where
 * each top-level array or object ends by tracking brackets and strings; JSON.parse reads it.
 */
export class JsonFrameDecoder implements FrameDecoder {
  readonly format = 'json';
  private readonly limits: FrameLimits;
  private readonly carry = new Carry();
  private state: JState = J.Between;
  private depth = 0;
  /** Where scanning resumes, relative to the carried bytes. */
  private scanned = 0;

  constructor(limits: FrameLimits) {
    this.limits = limits;
  }

  get pending(): number {
    return this.carry.length;
  }

  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    this.carry.append(chunk);
    const buf = this.carry.bytes;
    const { maxDepth, maxMessageSize } = this.limits;
    let start = 0;
    let i = this.scanned;
    for (; i < buf.length; i++) {
      const c = buf[i]!;
      switch (this.state) {
        case J.Between:
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
            start = i + 1;
            continue;
          }
          if (c !== 0x5b && c !== 0x7b) {
            throw new FrameError(
              'malformed',
              `JSON mode expects arrays or objects, got ${JSON.stringify(String.fromCharCode(c))}`,
            );
          }
          start = i;
          this.state = J.Value;
          this.depth = 1;
          break;
        case J.Value:
          if (c === 0x22) this.state = J.Str;
          else if (c === 0x5b || c === 0x7b) {
            if (++this.depth > maxDepth)
              throw new FrameError('too_deep', `JSON nested deeper than ${maxDepth} levels`);
          } else if (c === 0x5d || c === 0x7d) {
            if (--this.depth === 0) {
              this.state = J.Between;
              onFrame(buf.subarray(start, i + 1));
              start = i + 1;
            }
          }
          break;
        case J.Str:
          if (c === 0x5c) this.state = J.Escape;
          else if (c === 0x22) this.state = J.Value;
          break;
        default:
          this.state = J.Str;
      }
      if (this.state !== J.Between && i + 1 - start > maxMessageSize)
        throw new FrameError('too_large', `message is larger than ${maxMessageSize} bytes`);
    }
    this.carry.consume(start);
    this.scanned = i - start;
  }
}
