import { type Batch, decodeEntries } from '../../core/batch.ts';
import type { TaggedEntry } from '../../core/entry.ts';
import { EntryCursor } from '../../core/entry-cursor.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { keyPath } from '../../core/msgpack-fields.ts';
import { writeJson, writeJsonWithout } from '../../core/msgpack-json.ts';
import { encodeFailure } from '../format.ts';
import type { Rejection } from '../output.ts';
import { TimeField } from '../time-field.ts';
import { DocumentIds } from './document-id.ts';
import {
  type BulkOp,
  bulkOp,
  type DocumentLines,
  type EncodeSettings,
  encodeItem,
  noIdReason,
  scalarText,
} from './encode.ts';
import { bytePathUsable, findPath, scalarAt, topLevelKeys, UNSURE } from './record-fields.ts';

/**
 * A chunk → one `_bulk` body, written from the entries' msgpack bytes into one buffer: the
 * action line (cached per index name when it holds no `_id` or routing), then the record's
 * JSON (core/msgpack-json.ts) with `tag_key` and `time_key` appended. No record is decoded
 * unless the settings or the record need what only the decoded path (encode.ts) does; the
 * bytes are the same either way, which the tests check record by record.
 *
 *   batches ─► EntryCursor ─► _id (id_key bytes | DocumentIds) ─► index (IndexName.resolveAt)
 *           ─► action line ─► source (writeJson[Without] + tag + time) ─► BulkBody
 *                  └── settings or record the byte path does not cover: encodeItem(decoded)
 *
 * Items follow each other in the body, so a request of items i..j is one subarray of it.
 */
export class BulkEncoder {
  private readonly s: EncodeSettings;
  private readonly op: BulkOp;
  /** Why every entry takes the decoded path under these settings, or undefined. */
  readonly decodedBecause: string | undefined;
  private readonly ids = new DocumentIds();
  private readonly idKey: Uint8Array[] | undefined;
  private readonly routingKey: Uint8Array[] | undefined;
  /** Top-level remove_keys, as UTF-8. */
  private readonly removed: Uint8Array[];
  /** Keys looked for at the record's top level: time_key (bit 1), tag_key (bit 2). */
  private readonly lookFor: Uint8Array[];
  private readonly timeBit: number;
  private readonly tagBit: number;
  private readonly actions: ActionLines;
  private readonly sourceHead: Buffer;
  private readonly sourceTail: Buffer;
  private readonly tagField: TagField;
  private readonly timeField: TimeField;

  constructor(settings: EncodeSettings) {
    const s = settings;
    this.s = s;
    this.op = bulkOp(s);
    this.decodedBecause = decodedBecause(s);
    this.idKey = s.idKey && keyPath(s.idKey);
    this.routingKey = s.routingKey && keyPath(s.routingKey);
    this.removed = s.removeKeys.filter((path) => path.length === 1).flatMap(keyPath);
    const removed = (key: string) => s.removeKeys.some((path) => path.length === 1 && path[0] === key);
    this.lookFor = [];
    // A removed time_key is added back; a removed tag_key is added at the end, not in place.
    this.timeBit = removed(s.timeKey) ? 0 : 1 << (this.lookFor.push(Buffer.from(s.timeKey)) - 1);
    this.tagBit =
      s.includeTagKey && !removed(s.tagKey) ? 1 << (this.lookFor.push(Buffer.from(s.tagKey)) - 1) : 0;
    this.actions = new ActionLines(this.op, s);
    const wrapped = s.writeOperation === 'update' || s.writeOperation === 'upsert';
    this.sourceHead = Buffer.from(wrapped ? '{"doc":' : '');
    this.sourceTail = Buffer.from(
      `${s.writeOperation === 'upsert' ? ',"doc_as_upsert":true}' : wrapped ? '}' : ''}\n`,
    );
    this.tagField = new TagField(s.tagKey);
    this.timeField = new TimeField(
      s.timeKey,
      s.timeKeyFormat === undefined ? 'rfc3339' : { strftime: s.timeKeyFormat },
    );
  }

  /** The body for these batches' entries, and the entries that cannot be bulk actions. */
  encode(batches: readonly Batch[], sizeHint = 16 * 1024): BulkBody {
    const out = new JsonBuffer(sizeHint);
    const body = new BulkBody(batches);
    for (const [b, batch] of batches.entries()) {
      const cursor = new EntryCursor(batch.payload);
      while (cursor.next()) {
        const mark = out.n;
        let refused: string | undefined;
        try {
          let done = this.decodedBecause === undefined ? this.fast(out, batch.tag, cursor) : false;
          if (done === false) {
            out.n = mark;
            body.decoded += 1;
            done = this.decoded(out, batch.tag, cursor);
          }
          if (typeof done === 'string') refused = done;
        } catch (err) {
          // Encoding is pure: what fails once (an unknown ext type, a record too deep) fails every time.
          refused = encodeFailure(err);
        }
        if (refused === undefined) {
          body.add(out.n, b, cursor.start, cursor.end);
        } else {
          out.n = mark;
          body.rejected.push({ entry: cursor.decode(batch.tag), reason: refused });
        }
      }
    }
    body.finish(out.view());
    return body;
  }

  /**
   * The byte path: true when the entry's lines are written, false when it needs the decoded
   * path (`out` then holds a partial write the caller drops), or why it cannot be an action.
   */
  private fast(out: JsonBuffer, tag: string, c: EntryCursor): boolean | string {
    const found =
      this.lookFor.length > 0 ? topLevelKeys(c.payload, c.recordStart, c.recordEnd, this.lookFor) : 0;
    // A record with its own tag_key has it overwritten in place: the decoded path does that.
    if (found === UNSURE || (found & this.tagBit) !== 0) return false;
    const action = this.action(out, tag, c);
    if (action !== true) return action;
    out.bytes(this.sourceHead);
    this.document(out, tag, c, (found & this.timeBit) === 0);
    out.bytes(this.sourceTail);
    return true;
  }

  /** The action line, in encodeItem's key order: `_index`, `_type`, `_id`, `routing`, `pipeline`. */
  private action(out: JsonBuffer, tag: string, c: EntryCursor): boolean | string {
    const id = this.idKey && this.field(c, this.idKey);
    if (id === null) return false;
    const generated = id === undefined && this.s.generateId && this.op !== 'update';
    if (this.op === 'update' && id === undefined) return noIdReason(this.s);
    const routing = this.routingKey && this.field(c, this.routingKey);
    if (routing === null) return false;
    const index = this.s.index.resolveAt(tag, c.sec, c.nsec, c.payload, c.recordStart, c.recordEnd);
    if (index === undefined) return false;
    const lines = this.actions.of(index);
    if (!generated && id === undefined && routing === undefined) {
      out.bytes(lines.whole);
      return true;
    }
    out.bytes(lines.lead);
    if (generated) {
      out.bytes(ID_KEY);
      this.ids.write(out, tag, c);
      out.byte(0x22); // "
    } else if (id !== undefined) {
      out.bytes(ID_KEY_BARE);
      out.utf8(JSON.stringify(id));
    }
    if (routing !== undefined) {
      out.bytes(ROUTING_KEY);
      out.utf8(JSON.stringify(routing));
    }
    out.bytes(this.actions.tail);
    return true;
  }

  /** An id_key or routing_key value as scalarText gives it; null when the bytes cannot tell. */
  private field(c: EntryCursor, path: readonly Uint8Array[]): string | undefined | null {
    const at = findPath(c.payload, c.recordStart, c.recordEnd, path);
    if (at === UNSURE) return null;
    return at >= 0 ? scalarText(scalarAt(c.payload, at, c.recordEnd)) : undefined;
  }

  /** The record's JSON less the removed keys, then tag_key and time_key as documentOf adds them. */
  private document(out: JsonBuffer, tag: string, c: EntryCursor, addTime: boolean): void {
    const at = out.n;
    if (this.removed.length > 0) writeJsonWithout(out, c.payload, c.recordStart, c.recordEnd, this.removed);
    else writeJson(out, c.payload, c.recordStart, c.recordEnd);
    const addTag = this.s.includeTagKey;
    if (!addTag && !addTime) return;
    let empty = out.n - at === 2;
    out.n -= 1; // reopen the map: its closing brace comes after the added fields
    if (addTag) {
      if (!empty) out.byte(0x2c); // ,
      out.bytes(this.tagField.of(tag));
      empty = false;
    }
    if (addTime) {
      if (!empty) out.byte(0x2c);
      this.timeField.write(out, c.sec, c.nsec);
    }
    out.byte(0x7d); // }
  }

  private decoded(out: JsonBuffer, tag: string, c: EntryCursor): true | string {
    const lines = encodeItem(c.decode(tag), this.s);
    if (typeof lines === 'string') return lines;
    out.utf8(lines.action);
    out.byte(0x0a);
    out.utf8(lines.source);
    out.byte(0x0a);
    return true;
  }
}

const ID_KEY = Buffer.from(',"_id":"');
const ID_KEY_BARE = Buffer.from(',"_id":');
const ROUTING_KEY = Buffer.from(',"routing":');

/**
 * Why the byte path cannot take any record under these settings, or undefined. What it
 * leaves to the decoded path: `replace_dots` (every key at every depth rewritten), nested
 * `remove_keys`, and keys a JavaScript object treats specially (an array index is listed
 * first, `__proto__` is renamed or sets the prototype, and `in` sees Object.prototype).
 */
function decodedBecause(s: EncodeSettings): string | undefined {
  if (s.replaceDots) return 'replace_dots';
  if (s.removeKeys.some((path) => path.length > 1)) return 'nested remove_keys';
  if (!s.removeKeys.every(bytePathUsable)) return 'remove_keys';
  if (s.idKey && !bytePathUsable(s.idKey)) return 'id_key';
  if (s.routingKey && !bytePathUsable(s.routingKey)) return 'routing_key';
  if (specialKey(s.timeKey) || s.timeKey in {}) return 'time_key';
  if (s.includeTagKey && (specialKey(s.tagKey) || s.tagKey === s.timeKey)) return 'tag_key';
  return undefined;
}

function specialKey(key: string): boolean {
  return key === '__proto__' || key === '__proto_' || /^(0|[1-9]\d{0,9})$/.test(key);
}

interface ActionBytes {
  /** The action line up to where `_id` and routing go. */
  lead: Buffer;
  /** The whole line, for documents with neither. */
  whole: Buffer;
}

/** Action lines by index name, in the key order encodeItem's JSON.stringify gives. */
class ActionLines {
  /** After `_id` and routing: the pipeline, the closing braces, the newline. */
  readonly tail: Buffer;
  private readonly head: string;
  private readonly type: string;
  private readonly cache = new Map<string, ActionBytes>();
  private lastName: string | undefined;
  private last: ActionBytes | undefined;

  constructor(op: BulkOp, s: EncodeSettings) {
    this.head = `{${JSON.stringify(op)}:{"_index":`;
    this.type = s.typeName === undefined ? '' : `,"_type":${JSON.stringify(s.typeName)}`;
    // Updates run no ingest pipeline; create and index do.
    const pipeline =
      s.pipeline !== undefined && op !== 'update' ? `,"pipeline":${JSON.stringify(s.pipeline)}` : '';
    this.tail = Buffer.from(`${pipeline}}}\n`);
  }

  of(index: string): ActionBytes {
    if (index === this.lastName) return this.last!;
    let action = this.cache.get(index);
    if (!action) {
      // Names come from tags, days and record values: bounded in practice, but not by us.
      if (this.cache.size >= 1024) this.cache.clear();
      const lead = Buffer.from(`${this.head}${JSON.stringify(index)}${this.type}`);
      action = { lead, whole: Buffer.concat([lead, this.tail]) };
      this.cache.set(index, action);
    }
    this.lastName = index;
    this.last = action;
    return action;
  }
}

/** `"tag_key":"<tag>"`, kept for the last tag. */
class TagField {
  private readonly key: string;
  private tag: string | undefined;
  private bytes: Buffer = Buffer.alloc(0);

  constructor(key: string) {
    this.key = JSON.stringify(key);
  }

  of(tag: string): Buffer {
    if (tag !== this.tag) {
      this.tag = tag;
      this.bytes = Buffer.from(`${this.key}:${JSON.stringify(tag)}`);
    }
    return this.bytes;
  }
}

/**
 * A chunk's `_bulk` body and what each item in it came from. Items are numbered in body
 * order; entries are decoded only when asked for (an item to retry or reject).
 */
export class BulkBody {
  body: Buffer = Buffer.alloc(0);
  count = 0;
  /** Entries that cannot be bulk actions (an update without an _id, a record JSON cannot hold). */
  readonly rejected: Rejection[] = [];
  /** Entries that took the decoded path. */
  decoded = 0;
  private readonly batches: readonly Batch[];
  /** Where each item's lines end in `body` (the next item's start). */
  private readonly ends: number[] = [];
  /** Each item's batch, and where its entry lies in that batch's payload. */
  private readonly batchOf: number[] = [];
  private readonly entryStart: number[] = [];
  private readonly entryEnd: number[] = [];

  constructor(batches: readonly Batch[]) {
    this.batches = batches;
  }

  add(end: number, batch: number, entryStart: number, entryEnd: number): void {
    this.ends.push(end);
    this.batchOf.push(batch);
    this.entryStart.push(entryStart);
    this.entryEnd.push(entryEnd);
    this.count += 1;
  }

  finish(body: Buffer): void {
    this.body = body;
  }

  /** 0 … count − 1, the items as the request layer handles them. */
  items(): number[] {
    return Array.from({ length: this.count }, (_, i) => i);
  }

  private start(i: number): number {
    return i === 0 ? 0 : this.ends[i - 1]!;
  }

  /** Bytes item `i` takes in a request body, newlines included. */
  bytes(i: number): number {
    return this.ends[i]! - this.start(i);
  }

  /** The body of a request of these items: a view into the chunk's body when they follow each other. */
  slice(items: readonly number[]): Buffer {
    const first = items[0]!;
    const last = items[items.length - 1]!;
    if (last - first + 1 === items.length) return this.body.subarray(this.start(first), this.ends[last]);
    return Buffer.concat(items.map((i) => this.body.subarray(this.start(i), this.ends[i])));
  }

  /** Item `i`'s entry, decoded (for a retry or a rejection). */
  entry(i: number): TaggedEntry {
    const batch = this.batches[this.batchOf[i]!]!;
    const [entry] = decodeEntries(batch.payload.subarray(this.entryStart[i], this.entryEnd[i]));
    return { ...entry!, tag: batch.tag };
  }

  /** Item `i`'s two lines, as text (trace_error, tests). */
  lines(i: number): DocumentLines {
    const text = this.body.toString('utf8', this.start(i), this.ends[i]! - 1);
    const cut = text.indexOf('\n');
    return { action: text.slice(0, cut), source: text.slice(cut + 1) };
  }
}
