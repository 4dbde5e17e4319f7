import { randomUUID } from 'node:crypto';
import type { BufferSettings } from '../../config/schema.ts';
import type { Batch } from '../../core/batch.ts';
import { BackpressureError } from '../../core/errors.ts';
import type { EmitOptions } from '../../inputs/input.ts';
import type { Logger } from '../../logger.ts';
import type { BufferStats, Metrics } from '../../metrics/registry.ts';
import type { Output, Rejection } from '../../outputs/output.ts';
import type { BufferBackend, BufferDeps, DeadLetterInfo, DeadLetterQueue, OutputBuffer } from '../buffer.ts';
import { batchesOf, coalesce, makeChunk, splitBatch } from '../chunk.ts';
import { type BufferCounters, deliver, newCounters, reasonOf } from '../deliver.ts';
import { giveUpReason, retryDelay } from '../retry.ts';

/**
 * The embedded backend: everything in this process. Same contract as redis, but what is
 * buffered is lost if the process dies.
 *
 *   stage ─► open ─seal─► ready[] ─► inflight (≤ flush_thread_count) ─► done / dead[]
 *                           ▲                         │
 *                           └── waiting (retry timer) ◄┘
 */
export class MemoryBackend implements BufferBackend {
  readonly type = 'memory';
  readonly shared = false;
  create(output: Output, settings: BufferSettings, deps: BufferDeps): OutputBuffer {
    return new MemoryOutputBuffer(output, settings, deps);
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
  /** Failed tries so far. */
  retries: number;
  failingSince?: number;
  readyAt?: number;
  timer?: NodeJS.Timeout;
}

interface DeadChunk extends DeadLetterInfo {
  batches: Batch[];
}

export class MemoryOutputBuffer implements OutputBuffer {
  readonly id: string;
  readonly type: string;
  readonly settings: BufferSettings;
  readonly deadLetter: DeadLetterQueue;
  private readonly output: Output;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly counters: BufferCounters = newCounters();

  private open: MemChunk | undefined;
  private openTimer: NodeJS.Timeout | undefined;
  private readonly ready: MemChunk[] = [];
  private readonly waiting = new Set<MemChunk>();
  private readonly inflight = new Set<MemChunk>();
  private readonly dead: DeadChunk[] = [];
  private bytesHeld = 0;
  private roomWaiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private running = false;
  private stopping = false;

  constructor(output: Output, settings: BufferSettings, deps: BufferDeps) {
    this.output = output;
    this.id = output.id;
    this.type = output.type;
    this.settings = settings;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.deadLetter = this.makeDeadLetterQueue();
  }

  async reserve(bytes: number, options: EmitOptions): Promise<void> {
    const limit = this.settings.totalLimitSize;
    if (this.stopping) throw new BackpressureError(`output ${this.id} is shutting down`);
    if (this.bytesHeld + bytes <= limit) return;
    switch (this.settings.overflowAction) {
      case 'drop_oldest_chunk':
        while (this.bytesHeld + bytes > limit && (this.ready.length > 0 || this.waiting.size > 0))
          this.dropOldest();
        return;
      case 'block':
        if (options.wait) {
          while (this.bytesHeld + bytes > limit && this.bytesHeld > 0) {
            if (this.stopping) throw new BackpressureError(`output ${this.id} is shutting down`);
            await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
          }
          return;
        }
        throw new BackpressureError(`output ${this.id} buffer is full (${limit} bytes)`);
      default:
        throw new BackpressureError(`output ${this.id} buffer is full (${limit} bytes)`);
    }
  }

  async stage(batch: Batch): Promise<void> {
    this.counters.emitCount += 1;
    this.counters.emitRecords += batch.count;
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

  async start(): Promise<void> {
    this.running = true;
    this.pump();
  }

  async stop(deadline: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.releaseRoomWaiters();
    this.seal();
    if (this.settings.flushAtShutdown && this.running) {
      // One last try for chunks waiting on a retry timer, then drain what fits the deadline.
      for (const c of this.waiting) this.requeue(c, true);
      this.pump();
      await this.idleOrDeadline(deadline);
    }
    this.running = false;
    for (const c of this.waiting) clearTimeout(c.timer);
    const lost = [...this.ready, ...this.waiting, ...this.inflight].reduce((n, c) => n + c.count, 0);
    if (lost > 0) {
      this.metrics.recordsDropped.inc({ plugin_id: this.id, type: this.type, reason: 'shutdown' }, lost);
      this.logger.error(
        { records: lost },
        'shutdown deadline passed; memory buffer records not delivered are lost',
      );
    }
  }

  stats(): BufferStats {
    let queueBytes = 0;
    for (const c of this.ready) queueBytes += c.bytes;
    for (const c of this.waiting) queueBytes += c.bytes;
    for (const c of this.inflight) queueBytes += c.bytes;
    let nextRetry = Number.POSITIVE_INFINITY;
    for (const c of this.waiting) nextRetry = Math.min(nextRetry, c.readyAt ?? Number.POSITIVE_INFINITY);
    return {
      ...this.counters,
      stageLength: this.open ? 1 : 0,
      stageBytes: this.open?.bytes ?? 0,
      queueLength: this.ready.length + this.waiting.size + this.inflight.size,
      queueBytes,
      totalLimitBytes: this.settings.totalLimitSize,
      retryWait: Number.isFinite(nextRetry) ? Math.max(0, (nextRetry - Date.now()) / 1000) : 0,
      deadLetterChunks: this.dead.length,
      deadLetterRecords: this.dead.reduce((n, d) => n + d.count, 0),
    };
  }

  private openChunk(): MemChunk {
    const chunk: MemChunk = { id: randomUUID(), batches: [], count: 0, bytes: 0, retries: 0 };
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
    chunk.batches = coalesce(chunk.batches);
    this.ready.push(chunk);
    this.pump();
  }

  private pump(): void {
    if (!this.running) return;
    while (this.inflight.size < this.settings.flushThreadCount && this.ready.length > 0) {
      const chunk = this.ready.shift()!;
      this.inflight.add(chunk);
      void this.flush(chunk)
        .catch((err: unknown) => {
          // A bug after the write must not lose the chunk: it waits for the next try.
          this.logger.error({ chunk_id: chunk.id, err }, 'flush bookkeeping failed; chunk kept for retry');
          this.waiting.add(chunk);
          chunk.timer = setTimeout(() => this.requeue(chunk, false), this.settings.retry.waitMs);
          chunk.timer.unref();
        })
        .finally(() => {
          this.inflight.delete(chunk);
          this.pump();
          this.notifyIdle();
        });
    }
  }

  private async flush(chunk: MemChunk): Promise<void> {
    const view = makeChunk(chunk.id, chunk.batches, chunk.retries);
    const outcome = await deliver(
      {
        output: this.output,
        counters: this.counters,
        metrics: this.metrics,
        logger: this.logger,
        slowFlushThresholdMs: this.settings.slowFlushThresholdMs,
      },
      view,
    );
    if (outcome.kind === 'done' || outcome.kind === 'partial')
      this.deadLetterEntries(outcome.rejected, chunk.retries + 1);
    if (outcome.kind === 'done') return this.release(chunk);
    if (outcome.kind === 'fatal') return this.toDeadLetter(chunk, reasonOf(outcome.error));
    if (outcome.kind === 'partial') {
      const remaining = batchesOf(outcome.retry);
      const bytes = remaining.reduce((n, b) => n + b.bytes, 0);
      this.bytesHeld += bytes - chunk.bytes;
      this.notifyRoom();
      chunk.batches = remaining;
      chunk.count = outcome.retry.length;
      chunk.bytes = bytes;
    }
    const error = outcome.kind === 'retryable' ? outcome.error : new Error(`${chunk.count} records to retry`);
    chunk.failingSince ??= Date.now();
    const giveUp = giveUpReason(this.settings.retry, chunk.retries, chunk.failingSince);
    if (giveUp) return this.toDeadLetter(chunk, `${giveUp}; last error: ${reasonOf(error)}`);
    if (this.stopping) {
      // No retries during shutdown; stop() counts what is left.
      this.waiting.add(chunk);
      return;
    }
    const delay = retryDelay(this.settings.retry, chunk.retries, error);
    chunk.retries += 1;
    this.counters.retryCount += 1;
    chunk.readyAt = Date.now() + delay;
    this.logger.warn(
      { chunk_id: chunk.id, retry: chunk.retries, retry_in_ms: delay, err: reasonOf(error) },
      'flush failed; will retry',
    );
    this.waiting.add(chunk);
    chunk.timer = setTimeout(() => this.requeue(chunk, false), delay);
    chunk.timer.unref();
  }

  private requeue(chunk: MemChunk, front: boolean): void {
    if (!this.waiting.delete(chunk)) return;
    clearTimeout(chunk.timer);
    chunk.readyAt = undefined;
    if (front) this.ready.unshift(chunk);
    else this.ready.push(chunk);
    this.pump();
  }

  private release(chunk: MemChunk): void {
    this.bytesHeld -= chunk.bytes;
    this.notifyRoom();
  }

  /** The oldest queued chunk; while the sink fails they all wait on a retry timer, so those count too. */
  private dropOldest(): void {
    let chunk = this.ready.shift();
    if (!chunk) {
      chunk = this.waiting.values().next().value!;
      this.waiting.delete(chunk);
      clearTimeout(chunk.timer);
    }
    this.release(chunk);
    this.metrics.recordsDropped.inc({ plugin_id: this.id, type: this.type, reason: 'overflow' }, chunk.count);
    this.logger.warn(
      { chunk_id: chunk.id, records: chunk.count },
      'buffer full: dropped oldest chunk (overflow_action drop_oldest_chunk)',
    );
  }

  private toDeadLetter(chunk: MemChunk, reason: string): void {
    this.release(chunk);
    this.addDead(chunk.batches, reason, chunk.retries + 1);
  }

  private deadLetterEntries(rejected: readonly Rejection[], attempts: number): void {
    if (rejected.length === 0) return;
    // One dead-letter chunk per distinct reason, so `dlq show` groups what failed alike.
    const byReason = new Map<string, Rejection['entry'][]>();
    for (const r of rejected) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.entry]);
    for (const [reason, entries] of byReason) this.addDead(batchesOf(entries), reason, attempts);
  }

  private addDead(batches: Batch[], reason: string, attempts: number): void {
    const count = batches.reduce((n, b) => n + b.count, 0);
    const bytes = batches.reduce((n, b) => n + b.bytes, 0);
    const labels = { plugin_id: this.id, type: this.type };
    if (!this.settings.deadLetter.enabled) {
      this.metrics.recordsDropped.inc({ ...labels, reason: 'dead_letter_disabled' }, count);
      this.logger.error(
        { records: count, reason },
        'records failed for good and dead_letter is disabled: dropped',
      );
      return;
    }
    const info: DeadChunk = {
      id: randomUUID(),
      outputId: this.id,
      reason,
      attempts,
      time: Date.now(),
      count,
      bytes,
      batches,
    };
    this.dead.push(info);
    this.logger.error(
      { dead_letter_id: info.id, records: count, attempts, reason },
      'chunk moved to dead-letter queue',
    );
    let held = this.dead.reduce((n, d) => n + d.bytes, 0);
    while (held > this.settings.deadLetter.maxSize && this.dead.length > 1) {
      const old = this.dead.shift()!;
      held -= old.bytes;
      this.metrics.recordsDropped.inc({ ...labels, reason: 'dead_letter_full' }, old.count);
      this.logger.error(
        { dead_letter_id: old.id, records: old.count },
        'dead-letter queue full: dropped its oldest chunk',
      );
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
        const chunk: MemChunk = {
          id: randomUUID(),
          batches: d!.batches,
          count: d!.count,
          bytes: d!.bytes,
          retries: 0,
        };
        this.bytesHeld += chunk.bytes;
        this.ready.push(chunk);
        this.pump();
        return true;
      },
      purge: async (id) => {
        if (id === undefined) return this.dead.splice(0).length;
        const i = find(id);
        return i < 0 ? 0 : this.dead.splice(i, 1).length;
      },
    };
  }

  private notifyRoom(): void {
    if (this.bytesHeld < this.settings.totalLimitSize) this.releaseRoomWaiters();
  }

  private releaseRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }

  private notifyIdle(): void {
    if (this.ready.length > 0 || this.inflight.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async idleOrDeadline(deadline: number): Promise<void> {
    if (this.ready.length === 0 && this.inflight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      }),
    ]);
    clearTimeout(timer);
  }
}
