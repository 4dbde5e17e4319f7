import { isUtf8 } from 'node:buffer';
import { EntryCursor } from '../../core/entry-cursor.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { valueAt } from '../../core/msgpack-fields.ts';
import { writeJson } from '../../core/msgpack-json.ts';
import { getPath } from '../../core/record-path.ts';
import { BIN, MAP, newHeader, readHeader, STR } from '../../protocol/forward/msgpack-scan.ts';
import { encodeFailure, outputSizeHint } from '../format.ts';
import type { Chunk, Rejection } from '../output.ts';
import { isTenantId, TENANT_RULE } from './config.ts';
import {
  type LineSettings,
  type LokiEntry,
  newEntry,
  type Pair,
  type StreamTarget,
  shapeRecord,
  streamOf,
} from './encode.ts';
import {
  type ExtractedLabels,
  extractLabels,
  type LabelRules,
  labelPaths,
  labelsFrom,
  labelValue,
  type ReadPath,
} from './labels.ts';
import {
  bytesReadable,
  countRemaining,
  DECODE,
  FieldReader,
  nestedOmission,
  type Omission,
  omission,
  remaining,
  writeJsonOmitting,
} from './record-bytes.ts';

/**
 * A chunk → LokiEntry[], written from the entries' msgpack bytes: labels, tenant and
 * structured metadata read where they lie (FieldReader), the line written by the msgpack →
 * JSON transcoder minus the keys that went elsewhere, all lines into one buffer per chunk.
 * A record is decoded only when it is handed back (rejected here, or retried later), or when
 * its bytes could give another answer than its object (record-bytes.ts): that record takes
 * the decoded path, the reference the bytes path matches byte for byte (`key_value` lines
 * always do).
 *
 * Records of a stream carry the same bytes where labels and tenant come from (the same pod,
 * the same level): what those bytes give — labels, tenant, the keys to leave out of the line,
 * the cardinality guard's answer — is worked out once per chunk and reused.
 */

export interface EncoderSettings {
  readonly line: LineSettings;
  readonly rules: LabelRules;
  readonly tenantKey: readonly string[] | undefined;
  readonly tenantId: string | undefined;
}

/** The output's cardinality guard: whether a label value may make a stream, and who to tell when not. */
export interface LabelGuard {
  admit(name: string, value: string): boolean;
  demoted(name: string): void;
}

/** A chunk's entries as Loki gets them, and those refused before sending. */
export interface Prepared {
  entries: LokiEntry[];
  rejected: Rejection[];
  /** Records that took the decoded path (tests, profiling). */
  decoded: number;
}

/** Labels after the guard; no target when none is left (Loki refuses such a stream). */
interface Guarded {
  readonly target: StreamTarget | undefined;
  readonly demoted: readonly Pair[];
}

/** What records with the same label and tenant bytes share. */
interface Resolved {
  /** Those bytes (see storeKey). */
  readonly key: Buffer;
  /** Why such records are refused (a tenant Loki would not take), or undefined. */
  readonly refused: string | undefined;
  readonly tenant: string | undefined;
  readonly extracted: ExtractedLabels;
  /** What leaves the line: remove_keys, structured metadata and the values that became labels. */
  readonly omit: Omission;
  /** Asked of the guard once a record of these has its line (a record refused for its line is not counted). */
  guarded: Guarded | undefined;
}

/** Label sets compared byte for byte before the map: a few streams interleave in most chunks. */
const RECENT = 4;
const NO_LABELS = 'no labels: Loki needs at least one label per stream (set labels, e.g. job=fluent-bit)';
const NO_PAIRS: readonly Pair[] = [];
const h = newHeader();

/** Buffer's own slicers, which skip toString's argument checks (not in @types/node). */
interface SliceBuffer extends Buffer {
  utf8Slice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

const pathKey = (path: readonly string[]) => path.join('\u0000');

export class EntryEncoder {
  private readonly s: EncoderSettings;
  private readonly guard: LabelGuard;
  /** False when every record takes the decoded path (key_value lines, paths bytes cannot follow). */
  private readonly fromBytes: boolean;
  private readonly reader: FieldReader;
  private readonly slots = new Map<string, number>();
  /** Slots whose bytes decide labels and tenant. */
  private readonly keySlots: number[] = [];
  /** The slot of each structured_metadata entry, in order. */
  private readonly metaSlots: number[];

  // One chunk's state, dropped after it so its bytes are not kept alive (its entries hold `lines`).
  private lines = new JsonBuffer(64);
  private byTag = new Map<string, Map<string, Resolved>>();
  private cache = new Map<string, Resolved>();
  /** The label sets of this batch's last records, the latest first. */
  private recent: Resolved[] = [];
  /** Scratch for storeKey. */
  private sig: SliceBuffer = Buffer.alloc(256) as SliceBuffer;
  private text: SliceBuffer = Buffer.alloc(0) as SliceBuffer;
  private decoded = 0;

  constructor(settings: EncoderSettings, guard: LabelGuard) {
    this.s = settings;
    this.guard = guard;
    const { line, rules, tenantKey } = settings;
    const keyPaths = [...labelPaths(rules), ...(tenantKey ? [tenantKey] : [])];
    const metaPaths = line.structuredMetadata.map((m) => m.path);
    const paths: (readonly string[])[] = [];
    const slotOf = (path: readonly string[]) => {
      let slot = this.slots.get(pathKey(path));
      if (slot === undefined) {
        slot = paths.push(path) - 1;
        this.slots.set(pathKey(path), slot);
      }
      return slot;
    };
    for (const path of keyPaths) {
      const slot = slotOf(path);
      if (!this.keySlots.includes(slot)) this.keySlots.push(slot);
    }
    this.metaSlots = metaPaths.map(slotOf);
    this.reader = new FieldReader(paths);
    this.fromBytes =
      line.lineFormat === 'json' && [...paths, ...line.removeKeys].every((path) => bytesReadable(path));
  }

  encode(chunk: Chunk): Prepared {
    const entries: LokiEntry[] = [];
    const rejected: Rejection[] = [];
    this.lines = new JsonBuffer(outputSizeHint(chunk.bytes));
    this.decoded = 0;
    try {
      for (const batch of chunk.batches) {
        const { tag, payload } = batch;
        this.startBatch(tag, payload);
        const cursor = new EntryCursor(payload);
        while (cursor.next()) {
          const built = this.one(tag, cursor);
          if ('reason' in built) rejected.push(built);
          else entries.push(built);
        }
      }
    } finally {
      this.lines = new JsonBuffer(64);
      this.byTag = new Map();
      this.cache = new Map();
      this.recent = [];
      this.text = Buffer.alloc(0) as SliceBuffer;
    }
    return { entries, rejected, decoded: this.decoded };
  }

  private startBatch(tag: string, payload: Uint8Array): void {
    let cache = this.byTag.get(tag);
    if (!cache) {
      cache = new Map();
      this.byTag.set(tag, cache);
    }
    this.cache = cache;
    this.recent = [];
    this.text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) as SliceBuffer;
  }

  private one(tag: string, cursor: EntryCursor): LokiEntry | Rejection {
    if (this.fromBytes) {
      try {
        return this.encodeBytes(tag, cursor);
      } catch (err) {
        if (err !== DECODE) throw err;
      }
    }
    return this.encodeDecoded(tag, cursor);
  }

  // ── from the bytes ────────────────────────────────────────────────────────────────────

  /** Throws DECODE for a record whose bytes could answer otherwise than its object. */
  private encodeBytes(tag: string, cursor: EntryCursor): LokiEntry | Rejection {
    const src = cursor.payload;
    // Walks over the record tell the cursor where it ends, so it need not walk it again.
    const limit = src.length;
    if (this.slots.size > 0) cursor.recordEndsAt(this.reader.read(src, cursor.recordStart, limit));
    const r = this.resolve(tag, src);
    if (r.refused !== undefined) return { entry: cursor.decode(tag), reason: r.refused };
    const lines = this.lines;
    const lineStart = lines.n;
    try {
      const recordEnd = this.writeLine(src, cursor.recordStart, limit, r.omit);
      if (recordEnd >= 0) cursor.recordEndsAt(recordEnd);
    } catch (err) {
      lines.n = lineStart;
      if (err === DECODE) throw err;
      return { entry: cursor.decode(tag), reason: encodeFailure(err) };
    }
    r.guarded ??= this.admit(r.tenant, r.extracted);
    const { target, demoted } = r.guarded;
    if (target === undefined) {
      lines.n = lineStart;
      return { entry: cursor.decode(tag), reason: NO_LABELS };
    }
    return newEntry(tag, cursor, target, lines, lineStart, lines.n, this.metadata(src, demoted));
  }

  /**
   * What the record's label and tenant bytes give. Records come in runs from one pod or
   * of one level, so the few label sets seen last are compared first, byte for byte.
   */
  private resolve(tag: string, src: Uint8Array): Resolved {
    const recent = this.recent;
    for (let i = 0; i < recent.length; i++) {
      const r = recent[i]!;
      if (!this.sameKey(src, r.key)) continue;
      if (i > 0) {
        recent.splice(i, 1);
        recent.unshift(r);
      }
      return r;
    }
    const key = this.storeKey(src);
    let r = this.cache.get(key);
    if (r === undefined) {
      r = this.resolveNew(tag, src, Buffer.from(this.sig.subarray(0, key.length)));
      this.cache.set(key, r);
    }
    recent.unshift(r);
    if (recent.length > RECENT) recent.pop();
    return r;
  }

  private resolveNew(tag: string, src: Uint8Array, key: Buffer): Resolved {
    const { start, end } = this.reader;
    const read: ReadPath = (path) => {
      const slot = this.slots.get(pathKey(path))!;
      return start[slot]! < 0 ? undefined : valueAt(src, start[slot]!, end[slot]!);
    };
    const { tenant, refused } = this.tenantOf(read);
    const extracted = labelsFrom(read, tag, this.s.rules);
    const { removeKeys, structuredMetadata } = this.s.line;
    const omit = omission([...removeKeys, ...structuredMetadata.map((m) => m.path), ...extracted.consumed]);
    return { key, refused, tenant, extracted, omit, guarded: undefined };
  }

  /** Whether the key slots hold the bytes `key` was made of (see storeKey). */
  private sameKey(src: Uint8Array, key: Buffer): boolean {
    const { start, end } = this.reader;
    let at = 0;
    for (const slot of this.keySlots) {
      const s = start[slot]!;
      const length = s < 0 ? 0 : end[slot]! - s + 1;
      if (key.readUInt32LE(at) !== length) return false;
      at += 4;
      if (length === 0) continue;
      const bytes = length - 1;
      // A kubernetes map is a kilobyte: native memcmp beyond a few bytes.
      if (bytes > 32) {
        if (key.compare(src, s, s + bytes, at, at + bytes) !== 0) return false;
      } else {
        for (let i = 0; i < bytes; i++) if (key[at + i] !== src[s + i]) return false;
      }
      at += bytes;
    }
    return true;
  }

  /**
   * The key slots' bytes, into `sig`: per slot a 4-byte length (0 when absent, else the
   * value's bytes + 1), then the bytes. Returned as a map key.
   */
  private storeKey(src: Uint8Array): string {
    const { start, end } = this.reader;
    let size = 0;
    for (const slot of this.keySlots) size += 4 + (start[slot]! < 0 ? 0 : end[slot]! - start[slot]!);
    if (size > this.sig.length) this.sig = Buffer.alloc(Math.max(size, this.sig.length * 2)) as SliceBuffer;
    const sig = this.sig;
    let at = 0;
    for (const slot of this.keySlots) {
      const s = start[slot]!;
      sig.writeUInt32LE(s < 0 ? 0 : end[slot]! - s + 1, at);
      at += 4;
      if (s >= 0) {
        sig.set(src.subarray(s, end[slot]!), at);
        at += end[slot]! - s;
      }
    }
    return sig.latin1Slice(0, at);
  }

  /** Writes the line of the record at `start` (`end` bounds it); returns where the record ends. */
  private writeLine(src: Uint8Array, start: number, end: number, omit: Omission): number {
    if (this.s.line.dropSingleKey !== false) {
      const recordEnd = countRemaining(src, start, end, omit.leaves);
      if (remaining.count === 1) {
        this.writeSingle(src, end, omit);
        return recordEnd;
      }
    }
    return writeJsonOmitting(this.lines, src, start, end, omit);
  }

  /** drop_single_key: the one value left, as `line_format` writes it, or a string as it is (`raw`). */
  private writeSingle(src: Uint8Array, end: number, omit: Omission): void {
    const at = remaining.lastValueAt;
    const inner = nestedOmission(omit, src, remaining.lastKeyAt, remaining.lastKeyLength);
    const body = readHeader(src, at, end, h);
    if (this.s.line.dropSingleKey === 'raw' && (h.type === STR || h.type === BIN)) {
      const stop = body + h.length;
      if (isUtf8(src.subarray(body, stop))) this.lines.bytes(src, body, stop);
      else this.lines.utf8(this.text.utf8Slice(body, stop));
    } else if (inner !== undefined && h.type === MAP) writeJsonOmitting(this.lines, src, at, end, inner);
    else writeJson(this.lines, src, at, end);
  }

  /** structured_metadata, in its order, then the labels the guard held back. */
  private metadata(src: Uint8Array, demoted: readonly Pair[]): readonly Pair[] {
    if (this.metaSlots.length === 0) return demoted;
    const { start, end } = this.reader;
    const names = this.s.line.structuredMetadata;
    let out: Pair[] | undefined;
    for (const [i, slot] of this.metaSlots.entries()) {
      if (start[slot]! < 0) continue;
      const value = this.labelValueAt(src, start[slot]!, end[slot]!);
      if (value === undefined) continue;
      out ??= [];
      out.push([names[i]!.name, value]);
    }
    if (out === undefined) return demoted;
    for (const pair of demoted) out.push(pair);
    return out;
  }

  /** labelValue of the value at `at`; a string is read without the decoder. */
  private labelValueAt(src: Uint8Array, at: number, end: number): string | undefined {
    const body = readHeader(src, at, end, h);
    if (h.type !== STR) return labelValue(valueAt(src, at, end));
    return h.length === 0 ? undefined : this.text.utf8Slice(body, body + h.length);
  }

  // ── decoded ───────────────────────────────────────────────────────────────────────────

  /** The reference path: the decoded record through extractLabels and shapeRecord. */
  private encodeDecoded(tag: string, cursor: EntryCursor): LokiEntry | Rejection {
    this.decoded += 1;
    const entry = cursor.decode(tag);
    const { tenant, refused } = this.tenantOf((path) => getPath(entry.record, path));
    if (refused !== undefined) return { entry, reason: refused };
    let extracted: ExtractedLabels;
    let shaped: ReturnType<typeof shapeRecord>;
    try {
      extracted = extractLabels(entry, this.s.rules);
      shaped = shapeRecord(entry.record, extracted.consumed, this.s.line);
    } catch (err) {
      return { entry, reason: encodeFailure(err) };
    }
    const { target, demoted } = this.admit(tenant, extracted);
    if (target === undefined) return { entry, reason: NO_LABELS };
    const lines = this.lines;
    const lineStart = lines.n;
    lines.utf8(shaped.line);
    const metadata = shaped.metadata.length === 0 ? demoted : [...shaped.metadata, ...demoted];
    return newEntry(tag, cursor, target, lines, lineStart, lines.n, metadata);
  }

  // ── shared ────────────────────────────────────────────────────────────────────────────

  private tenantOf(read: ReadPath): { tenant: string | undefined; refused: string | undefined } {
    const key = this.s.tenantKey;
    const tenant = (key === undefined ? undefined : labelValue(read(key))) ?? this.s.tenantId;
    if (tenant === undefined || isTenantId(tenant)) return { tenant, refused: undefined };
    return {
      tenant,
      refused: `tenant id ${JSON.stringify(tenant)} is not valid for Loki: ${TENANT_RULE}`,
    };
  }

  /** The cardinality guard over the labels read from the record: past max_label_values a value goes as metadata. */
  private admit(tenant: string | undefined, extracted: ExtractedLabels): Guarded {
    const labels = new Map(extracted.labels);
    const demoted: Pair[] = [];
    for (const name of extracted.dynamic) {
      const value = labels.get(name)!;
      if (this.guard.admit(name, value)) continue;
      labels.delete(name);
      demoted.push([name, value]);
      this.guard.demoted(name);
    }
    const pairs = demoted.length === 0 ? NO_PAIRS : demoted;
    if (labels.size === 0) return { target: undefined, demoted: pairs };
    const names = demoted.length === 0 ? undefined : demoted.map(([name]) => name);
    return { target: { tenant, ...streamOf(labels), demoted: names }, demoted: pairs };
  }
}
