import { type Batch, decodeEntries, makeBatch } from '../core/batch.ts';
import type { Entry, TaggedEntry } from '../core/entry.ts';
import type { Chunk } from '../outputs/output.ts';

export function makeChunk(id: string, batches: readonly Batch[], attempt: number): Chunk {
  let entries: TaggedEntry[] | undefined;
  let count = 0;
  let bytes = 0;
  for (const b of batches) {
    count += b.count;
    bytes += b.bytes;
  }
  return {
    id,
    attempt,
    count,
    bytes,
    batches,
    entries() {
      entries ??= batches.flatMap((b) => decodeEntries(b.payload).map((e) => ({ ...e, tag: b.tag })));
      return entries;
    },
  };
}

/** Neighbouring batches of one tag. */
export interface TagRun {
  readonly tag: string;
  readonly payloads: readonly Uint8Array[];
  readonly count: number;
  readonly bytes: number;
}

/**
 * A chunk's batches as runs of one tag, without joining their bytes: an output that sends a
 * message per tag (forward) copies them once, into the message; the stores no longer join
 * them first, which was a copy of every chunk at seal or lease.
 */
export function tagRuns(batches: readonly Batch[]): TagRun[] {
  const runs: TagRun[] = [];
  let i = 0;
  while (i < batches.length) {
    const tag = batches[i]!.tag;
    const payloads: Uint8Array[] = [];
    let count = 0;
    let bytes = 0;
    for (; i < batches.length && batches[i]!.tag === tag; i++) {
      payloads.push(batches[i]!.payload);
      count += batches[i]!.count;
      bytes += batches[i]!.bytes;
    }
    runs.push({ tag, payloads, count, bytes });
  }
  return runs;
}

/** Re-encodes entries (e.g. those an output asked to retry) into batches by tag run. */
export function batchesOf(entries: readonly TaggedEntry[]): Batch[] {
  const out: Batch[] = [];
  let start = 0;
  for (let i = 1; i <= entries.length; i++) {
    if (i === entries.length || entries[i]!.tag !== entries[start]!.tag) {
      out.push(makeBatch(entries[start]!.tag, entries.slice(start, i).map(stripTag)));
      start = i;
    }
  }
  return out;
}

/** Entries re-encoded per slice: 100,000 rejected records must not hold the event loop for their whole encoding. */
const ENCODE_SLICE = 2000;

/** batchesOf, yielding to the event loop between slices; with the batches' total bytes. */
export async function encodeEntries(
  entries: readonly TaggedEntry[],
): Promise<{ batches: Batch[]; count: number; bytes: number }> {
  const batches: Batch[] = [];
  let bytes = 0;
  for (let i = 0; i < entries.length; i += ENCODE_SLICE) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    for (const b of batchesOf(entries.slice(i, i + ENCODE_SLICE))) {
      batches.push(b);
      bytes += b.bytes;
    }
  }
  return { batches, count: entries.length, bytes };
}

function stripTag({ tag: _tag, ...entry }: TaggedEntry): Entry {
  return entry;
}

/** Cuts a batch that exceeds a chunk's limits into pieces that fit (a single oversized entry stays whole). */
export function splitBatch(batch: Batch, maxBytes: number, maxRecords: number): Batch[] {
  if (batch.bytes <= maxBytes && batch.count <= maxRecords) return [batch];
  const pieces: Batch[] = [];
  let current: Entry[] = [];
  let bytes = 0;
  for (const entry of decodeEntries(batch.payload)) {
    const size = makeBatch(batch.tag, [entry]).bytes;
    if (current.length > 0 && (bytes + size > maxBytes || current.length + 1 > maxRecords)) {
      pieces.push(makeBatch(batch.tag, current));
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length > 0) pieces.push(makeBatch(batch.tag, current));
  return pieces;
}
