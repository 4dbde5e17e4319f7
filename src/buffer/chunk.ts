import { type Batch, concatBatches, decodeEntries, makeBatch } from '../core/batch.ts';
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

/** Joins neighbouring batches of the same tag, so a chunk holds one payload per tag run. */
export function coalesce(batches: readonly Batch[]): Batch[] {
  const out: Batch[] = [];
  let run: Batch[] = [];
  for (const b of batches) {
    if (run.length > 0 && run[0]!.tag !== b.tag) {
      out.push(run.length === 1 ? run[0]! : concatBatches(run[0]!.tag, run));
      run = [];
    }
    run.push(b);
  }
  if (run.length > 0) out.push(run.length === 1 ? run[0]! : concatBatches(run[0]!.tag, run));
  return out;
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
