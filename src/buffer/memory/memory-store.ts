import { randomUUID } from 'node:crypto';
import type { BufferSettings } from '../../config/schema.ts';
import type { Batch } from '../../core/batch.ts';
import type { TaggedEntry } from '../../core/entry.ts';
import { SinkDriver } from '../../delivery/driver.ts';
import type { Output } from '../../outputs/output.ts';
import type { BufferBackend, BufferDeps, DeadLetterInfo, DeadLetterQueue, OutputBuffer } from '../buffer.ts';
import { encodeEntries, makeChunk, splitBatch } from '../chunk.ts';
import type { ChunkStore, Lease, Settlement, SettleReport, StoreSizes } from '../store.ts';

/**
 * The embedded backend: everything in this process. Same contract as redis, but what is
 * buffered is lost if the process dies.
 *
 *   stage ─► open ─seal─► sealed[] (seal order) ─lease─► written ─settle─► gone / back in place / dead[]
 */
export class MemoryBackend implements BufferBackend {
  readonly type = 'memory';
  readonly shared = false;
  create(output: Output, settings: BufferSettings, deps: BufferDeps): OutputBuffer {
    return new SinkDriver(output, new MemoryStore(output.id, settings), settings, deps);
  }
  ready(): boolean {
    return true;
  }
  async close(): Promise<void> {}
}

interface MemChunk {
  id: string;
  batches: Batch[];
  count: number;
  bytes: number;
  /** Counted failed tries so far. */
  retries: number;
  failingSince?: number;
  /** Epoch ms before which it is not leased (a retry's backoff). */
  readyAt?: number;
  leased: boolean;
}

interface DeadChunk extends DeadLetterInfo {
  batches: Batch[];
}

export class MemoryStore implements ChunkStore {
  readonly deadLetter: DeadLetterQueue;
  readonly pollMs = undefined;
  readonly renewMs = undefined;
  private readonly outputId: string;
  private readonly settings: BufferSettings;
  private open: MemChunk | undefined;
  private openTimer: NodeJS.Timeout | undefined;
  /** Sealed chunks, oldest first; a retried chunk keeps its place. */
  private readonly sealed: MemChunk[] = [];
  private readonly dead: DeadChunk[] = [];
  private bytesHeld = 0;
  private readyListener: () => void = () => {};

  constructor(outputId: string, settings: BufferSettings) {
    this.outputId = outputId;
    this.settings = settings;
    this.deadLetter = this.makeDeadLetterQueue();
  }

  heldBytes(): number {
    return this.bytesHeld;
  }

  async prepare(): Promise<void> {}

  async stage(batch: Batch): Promise<void> {
    const { chunkLimitSize, chunkLimitRecords } = this.settings;
    for (const piece of splitBatch(batch, chunkLimitSize, chunkLimitRecords)) {
      const open = this.open;
      if (open && (open.bytes + piece.bytes > chunkLimitSize || open.count + piece.count > chunkLimitRecords))
        this.seal();
      const target = this.open ?? this.openChunk();
      target.batches.push(piece);
      target.count += piece.count;
      target.bytes += piece.bytes;
      this.bytesHeld += piece.bytes;
      if (target.bytes >= chunkLimitSize || target.count >= chunkLimitRecords) this.seal();
    }
  }

  async lease(ordered: boolean): Promise<Lease | { waitMs: number | undefined }> {
    const now = Date.now();
    let wait: number | undefined;
    for (const c of this.sealed) {
      if (c.leased) continue;
      if (c.readyAt !== undefined && c.readyAt > now) {
        if (ordered) return { waitMs: c.readyAt - now };
        wait = Math.min(wait ?? Number.POSITIVE_INFINITY, c.readyAt - now);
        continue;
      }
      c.leased = true;
      return {
        chunk: makeChunk(c.id, c.batches, c.retries),
        retries: c.retries,
        failingSince: c.failingSince,
      };
    }
    return { waitMs: wait };
  }

  async renew(): Promise<boolean> {
    return true;
  }

  async deadLetterNow(entries: readonly TaggedEntry[], reason: string): Promise<SettleReport> {
    const report: SettleReport = { deadLettered: [], droppedFull: 0, droppedDisabled: 0, owned: false };
    this.addDead((await encodeEntries(entries)).batches, reason, 0, report);
    return report;
  }

  async settle(lease: Lease, s: Settlement): Promise<SettleReport> {
    const report: SettleReport = { deadLettered: [], droppedFull: 0, droppedDisabled: 0, owned: false };
    const attempts = lease.retries + 1;
    // Encoded first: the changes below happen in one go, with no other settle in between.
    const dead: { batches: Batch[]; reason: string }[] = [];
    for (const g of s.dead)
      dead.push({ batches: (await encodeEntries(g.entries)).batches, reason: g.reason });
    const keep = s.kind === 'retry' && s.keep ? await encodeEntries(s.keep) : undefined;
    for (const g of dead) this.addDead(g.batches, g.reason, attempts, report);
    const i = this.sealed.findIndex((c) => c.id === lease.chunk.id);
    if (i < 0) return report;
    report.owned = true;
    const chunk = this.sealed[i]!;
    chunk.leased = false;
    if (s.kind === 'done' || s.kind === 'dead') {
      this.sealed.splice(i, 1);
      this.bytesHeld -= chunk.bytes;
      if (s.kind === 'dead') this.addDead(chunk.batches, s.reason, attempts, report);
      return report;
    }
    if (keep) {
      this.bytesHeld += keep.bytes - chunk.bytes;
      chunk.batches = keep.batches;
      chunk.count = keep.count;
      chunk.bytes = keep.bytes;
    }
    if (s.counted) {
      chunk.retries += 1;
      chunk.failingSince ??= s.failingSince;
    }
    chunk.readyAt = s.at;
    return report;
  }

  async dropOldest(bytes: number): Promise<{ records: number; ids: string[] }> {
    let records = 0;
    const ids: string[] = [];
    const limit = this.settings.totalLimitSize;
    for (let i = 0; i < this.sealed.length && this.bytesHeld + bytes > limit; ) {
      const c = this.sealed[i]!;
      if (c.leased) {
        i++;
        continue;
      }
      this.sealed.splice(i, 1);
      this.bytesHeld -= c.bytes;
      records += c.count;
      ids.push(c.id);
    }
    return { records, ids };
  }

  /** At shutdown: nothing survives this process, so chunks waiting on a backoff get one last try now. */
  async sealOpen(): Promise<void> {
    this.seal();
    for (const c of this.sealed) c.readyAt = undefined;
  }

  onReady(listener: () => void): void {
    this.readyListener = listener;
  }

  sizes(): StoreSizes {
    let queueBytes = 0;
    let nextRetryAt: number | undefined;
    for (const c of this.sealed) {
      queueBytes += c.bytes;
      if (c.readyAt !== undefined && !c.leased && c.readyAt > Date.now())
        nextRetryAt = Math.min(nextRetryAt ?? Number.POSITIVE_INFINITY, c.readyAt);
    }
    return {
      stageLength: this.open ? 1 : 0,
      stageBytes: this.open?.bytes ?? 0,
      queueLength: this.sealed.length,
      queueBytes,
      deadLetterChunks: this.dead.length,
      deadLetterRecords: this.dead.reduce((n, d) => n + d.count, 0),
      nextRetryAt,
    };
  }

  async start(): Promise<void> {}

  async stop(): Promise<number> {
    clearTimeout(this.openTimer);
    const lost = this.sealed.reduce((n, c) => n + c.count, 0) + (this.open?.count ?? 0);
    this.sealed.length = 0;
    this.open = undefined;
    this.bytesHeld = 0;
    return lost;
  }

  private openChunk(): MemChunk {
    const chunk: MemChunk = { id: randomUUID(), batches: [], count: 0, bytes: 0, retries: 0, leased: false };
    this.open = chunk;
    this.openTimer = setTimeout(() => {
      if (this.open === chunk) this.seal();
    }, this.settings.flushIntervalMs);
    this.openTimer.unref();
    return chunk;
  }

  private seal(): void {
    const chunk = this.open;
    if (!chunk) return;
    clearTimeout(this.openTimer);
    this.open = undefined;
    this.sealed.push(chunk);
    this.readyListener();
  }

  private addDead(batches: Batch[], reason: string, attempts: number, report: SettleReport): void {
    const count = batches.reduce((n, b) => n + b.count, 0);
    const bytes = batches.reduce((n, b) => n + b.bytes, 0);
    if (!this.settings.deadLetter.enabled) {
      report.droppedDisabled += count;
      return;
    }
    const info: DeadChunk = {
      id: randomUUID(),
      outputId: this.outputId,
      reason,
      attempts,
      time: Date.now(),
      count,
      bytes,
      batches,
    };
    this.dead.push(info);
    report.deadLettered.push({ id: info.id, records: count, reason });
    let held = this.dead.reduce((n, d) => n + d.bytes, 0);
    while (held > this.settings.deadLetter.maxSize && this.dead.length > 1) {
      const old = this.dead.shift()!;
      held -= old.bytes;
      report.droppedFull += old.count;
    }
  }

  private makeDeadLetterQueue(): DeadLetterQueue {
    const find = (id: string) => this.dead.findIndex((d) => d.id === id);
    const info = ({ batches: _b, ...rest }: DeadChunk): DeadLetterInfo => rest;
    return {
      list: async () => this.dead.map(info),
      show: async (id) => {
        const d = this.dead[find(id)];
        return d && { info: info(d), entries: [...makeChunk(d.id, d.batches, 0).entries()] };
      },
      replay: async (id) => {
        const i = find(id);
        if (i < 0) return false;
        const [d] = this.dead.splice(i, 1);
        this.sealed.push({
          id: randomUUID(),
          batches: d!.batches,
          count: d!.count,
          bytes: d!.bytes,
          retries: 0,
          leased: false,
        });
        this.bytesHeld += d!.bytes;
        this.readyListener();
        return true;
      },
      purge: async (id) => {
        if (id === undefined) return this.dead.splice(0).length;
        const i = find(id);
        return i < 0 ? 0 : this.dead.splice(i, 1).length;
      },
    };
  }
}
