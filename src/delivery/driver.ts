import type { BufferDeps, DeadLetterQueue, OutputBuffer, Permit } from '../buffer/buffer.ts';
import type { ChunkStore, DeadGroup, Lease, Settlement, SettleReport } from '../buffer/store.ts';
import type { BufferSettings } from '../config/schema.ts';
import type { Batch } from '../core/batch.ts';
import { beforeDeadline } from '../core/deadline.ts';
import type { TaggedEntry } from '../core/entry.ts';
import { BackpressureError, errorMessage, HaltError, RejectError, RetryableError } from '../core/errors.ts';
import type { EmitOptions } from '../inputs/input.ts';
import { type Logger, rateLimited } from '../logger.ts';
import type { BufferStats, Metrics, RetryingChunk } from '../metrics/registry.ts';
import type { Chunk, Output, Rejection } from '../outputs/output.ts';
import { Admission } from './admission.ts';
import { giveUpReason, retryDelay } from './retry.ts';

/** The counters behind the fluentd_output_status_* gauges. */
export type BufferCounters = Pick<
  BufferStats,
  | 'emitCount'
  | 'emitRecords'
  | 'writeCount'
  | 'rollbackCount'
  | 'retryCount'
  | 'numErrors'
  | 'flushTimeCount'
  | 'slowFlushCount'
>;

export function newCounters(): BufferCounters {
  return {
    emitCount: 0,
    emitRecords: 0,
    writeCount: 0,
    rollbackCount: 0,
    retryCount: 0,
    numErrors: 0,
    flushTimeCount: 0,
    slowFlushCount: 0,
  };
}

/** What one write came to. */
type Outcome =
  | {
      kind: 'done';
      retry: readonly TaggedEntry[];
      rejected: readonly Rejection[];
      retryAfterMs?: number;
      retryReason?: string;
    }
  | { kind: 'retryable' | 'timeout' | 'reject' | 'halt' | 'aborted'; error: Error };

interface Flight {
  lease: Lease;
  controller: AbortController;
  /** Epoch ms the write began: an answer to a write older than a halt says nothing of the sink now. */
  started: number;
  /** The whole flush: write, then settle. */
  done?: Promise<void>;
}

/** Marks why the driver aborted a write. */
class WriteAbort extends Error {
  readonly timeout: boolean;
  constructor(message: string, timeout: boolean) {
    super(message);
    this.timeout = timeout;
  }
}

/** Past halts remembered for retry.timeout: enough for days of a flapping sink. */
const MAX_HALT_SPANS = 1000;

/** How often the driver re-reads a shared store's size while senders wait for room. */
const ROOM_POLL_MS = 200;

/** Retrying chunks the status lists: the most recent few say what is failing; queueLength says how many. */
const MAX_RETRYING = 20;

/**
 * A shared store's chunk this far past its next try (beyond write_timeout) was taken by another
 * process, which may have delivered it: this one no longer lists it.
 */
const RETRYING_STALE_MS = 60_000;

/**
 * One per output, the same over every chunk store: flush concurrency, the write deadline,
 * what each answer of the sink leads to (retry / reject / halt), order, the sink's health,
 * dead-letter routing, admission, and the metrics and log lines of a flush. An output only
 * says what happened; a store only keeps chunks.
 *
 *   lease (oldest first) ─► write, aborted at write_timeout ─► done        → settle done
 *                                                            ├ retryable   → backoff, retry (policy may give up → dead-letter)
 *                                                            ├ reject      → dead-letter
 *                                                            └ halt        → keep, probe with the oldest chunk, resume
 */
export class SinkDriver implements OutputBuffer {
  readonly id: string;
  readonly type: string;
  readonly settings: BufferSettings;
  readonly deadLetter: DeadLetterQueue;
  private readonly output: Output;
  private readonly store: ChunkStore;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly counters = newCounters();
  private readonly admission: Admission;
  private readonly flights = new Set<Flight>();
  private readonly labels: { plugin_id: string; type: string };
  private running = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private storeStopped = false;
  private pumping = false;
  private again = false;
  /** The last lease found nothing ready. */
  private empty = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Number.POSITIVE_INFINITY;
  private roomTimer: NodeJS.Timeout | undefined;
  private halt: { reason: string; since: number; probes: number } | undefined;
  /** Past halts, for retry.timeout (which does not run while halted). */
  private readonly haltSpans: { from: number; to: number }[] = [];
  private settledWaiters: (() => void)[] = [];
  /** Chunks this process set to retry, least recently first: next try (epoch ms) and why. */
  private readonly retrying = new Map<string, { attempt: number; at: number; error: string }>();
  /** stats() runs for every gauge of every scrape: the list is built once per change. */
  private retryingView: readonly RetryingChunk[] | undefined;
  private readonly warnLease: (err: unknown) => void;

  constructor(output: Output, store: ChunkStore, settings: BufferSettings, deps: BufferDeps) {
    this.output = output;
    this.store = store;
    this.id = output.id;
    this.type = output.type;
    this.settings = settings;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.labels = { plugin_id: output.id, type: output.type };
    this.deadLetter = store.deadLetter;
    this.admission = new Admission(settings.totalLimitSize, () => store.heldBytes());
    this.warnLease = rateLimited(30_000, (suppressed, err: unknown) =>
      this.logger.warn({ err: errorMessage(err), suppressed }, 'cannot take chunks from the buffer'),
    );
    store.onReady(() => {
      this.empty = false;
      this.pump();
    });
  }

  async reserve(bytes: number, options: EmitOptions): Promise<Permit> {
    if (this.stopping) throw this.shuttingDown();
    await this.store.prepare(bytes, options, () => this.stopping);
    if (this.stopping) throw this.shuttingDown();
    const now = this.admission.tryTake(bytes);
    if (now) return now;
    const full = () =>
      new BackpressureError(`output ${this.id} buffer is full (${this.settings.totalLimitSize} bytes)`);
    switch (this.settings.overflowAction) {
      case 'drop_oldest_chunk': {
        const { records, ids } = await this.store.dropOldest(bytes + this.admission.reservedBytes);
        for (const id of ids) this.forgetRetry(id);
        if (ids.length > 0) {
          this.metrics.recordsDropped.inc({ ...this.labels, reason: 'overflow' }, records);
          this.logger.warn(
            { chunk_ids: ids, records },
            'buffer full: dropped oldest chunk (overflow_action drop_oldest_chunk)',
          );
        }
        // Chunks being written cannot be dropped: past them, the batch is taken anyway.
        return this.admission.tryTake(bytes) ?? { bytes, release: () => {} };
      }
      case 'block':
        if (!options.wait) throw full();
        this.watchRoom();
        return this.admission.take(bytes);
      default:
        throw full();
    }
  }

  async stage(batch: Batch, permit: Permit): Promise<void> {
    try {
      // A permit taken just before stop() must not put records into a store that is gone.
      if (this.storeStopped) throw this.shuttingDown();
      this.counters.emitCount += 1;
      this.counters.emitRecords += batch.count;
      await this.store.stage(batch);
    } finally {
      permit.release();
    }
  }

  async start(): Promise<void> {
    await this.store.start();
    this.running = true;
    this.pump();
  }

  stop(deadline: number): Promise<void> {
    this.stopped ??= this.shutdown(deadline);
    return this.stopped;
  }

  stats(): BufferStats {
    const { nextRetryAt, ...sizes } = this.store.sizes();
    const retrying = this.retryingList();
    return {
      ...this.counters,
      ...sizes,
      totalLimitBytes: this.settings.totalLimitSize,
      retryWait: nextRetryAt === undefined ? 0 : Math.max(0, (nextRetryAt - Date.now()) / 1000),
      halted: this.halt ? 1 : 0,
      ...(this.halt && { haltReason: this.halt.reason }),
      ...(retrying.length > 0 && { retrying }),
    };
  }

  private retryingList(): readonly RetryingChunk[] {
    if (this.store.pollMs !== undefined && this.retrying.size > 0) {
      const stale = Date.now() - this.settings.writeTimeoutMs - RETRYING_STALE_MS;
      for (const [id, r] of this.retrying) if (r.at < stale) this.forgetRetry(id);
    }
    this.retryingView ??= [...this.retrying].map(([chunk, r]) => ({
      chunk,
      attempt: r.attempt,
      nextAttempt: new Date(r.at).toISOString(),
      lastError: r.error,
    }));
    return this.retryingView;
  }

  private noteRetry(id: string, attempt: number, at: number, outcome: Outcome): void {
    const error = outcome.kind === 'done' ? partialRetryError(outcome) : outcome.error;
    this.retrying.delete(id);
    this.retrying.set(id, { attempt, at, error: reasonOf(error) });
    if (this.retrying.size > MAX_RETRYING) this.retrying.delete(this.retrying.keys().next().value!);
    this.retryingView = undefined;
  }

  private forgetRetry(id: string): void {
    if (this.retrying.delete(id)) this.retryingView = undefined;
  }

  async refreshStats(): Promise<void> {
    await this.store.refreshSizes?.();
  }

  // --- flushing -------------------------------------------------------------------------

  /** Takes chunks while there is a free slot; one pass at a time, re-run when woken meanwhile. */
  private pump(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.fill()
      .catch((err: unknown) => {
        this.warnLease(err);
        this.wakeIn(1000);
      })
      .finally(() => {
        this.pumping = false;
        if (this.again) this.pump();
      });
  }

  private async fill(): Promise<void> {
    do {
      this.again = false;
      // While halted, one write at a time probes the sink.
      while (this.running && this.flights.size < (this.halt ? 1 : this.settings.flushThreadCount)) {
        const got = await this.store.lease(this.settings.ordered || this.halt !== undefined);
        if (!('chunk' in got)) {
          this.empty = true;
          this.wakeIn(got.waitMs);
          break;
        }
        this.empty = false;
        if (!this.running) {
          // Shutdown began while the lease was on its way: hand the chunk straight back.
          await this.store.settle(got, this.handBack(got));
          break;
        }
        this.launch(got);
      }
    } while (this.again && this.running);
    if (this.store.pollMs !== undefined) this.wakeIn(this.store.pollMs);
  }

  private wakeIn(ms: number | undefined): void {
    if (ms === undefined || !this.running) return;
    const at = Date.now() + ms;
    if (this.wakeTimer && this.wakeAt <= at) return;
    clearTimeout(this.wakeTimer);
    this.wakeAt = at;
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = undefined;
      this.wakeAt = Number.POSITIVE_INFINITY;
      this.pump();
    }, ms);
    this.wakeTimer.unref();
  }

  private launch(lease: Lease): void {
    const flight: Flight = { lease, controller: new AbortController(), started: Date.now() };
    this.flights.add(flight);
    flight.done = this.flush(flight)
      .catch((err: unknown) => {
        // The chunk stays leased; a shared store hands it out again when the lease expires.
        this.logger.error({ chunk_id: lease.chunk.id, err: errorMessage(err) }, 'settling a flush failed');
      })
      .finally(() => {
        this.flights.delete(flight);
        for (const w of this.settledWaiters.splice(0)) w();
        this.pump();
      });
  }

  private async flush(flight: Flight): Promise<void> {
    const { lease } = flight;
    const chunk = lease.chunk;
    this.counters.writeCount += 1;
    const started = performance.now();
    const { renewMs } = this.store;
    const renewer =
      renewMs === undefined
        ? undefined
        : setInterval(() => {
            this.store.renew(lease).then(
              (held) => {
                // Another process has the chunk now: stop writing a second copy.
                if (!held) flight.controller.abort(new WriteAbort('lease on the chunk lost', false));
              },
              (err: unknown) => this.warnLease(err),
            );
          }, renewMs);
    renewer?.unref();
    let outcome: Outcome;
    try {
      outcome = lease.unreadable
        ? { kind: 'reject', error: new RejectError(lease.unreadable) }
        : await this.write(chunk, flight.controller);
    } finally {
      clearInterval(renewer);
    }
    const elapsed = performance.now() - started;
    this.observe(chunk, outcome, elapsed);
    this.track(flight, outcome);
    const settlement = this.decide(lease, outcome);
    const report = await this.store.settle(lease, settlement);
    this.reportDeadLetters(report, lease.retries + 1);
    if (settlement.kind === 'retry' && settlement.counted && report.owned) {
      this.counters.retryCount += 1;
      this.noteRetry(chunk.id, lease.retries + 1, settlement.at, outcome);
    } else this.forgetRetry(chunk.id);
    this.admission.wake();
  }

  /** The output's write, given up at write_timeout whether or not the output honours the signal. */
  private async write(chunk: Chunk, controller: AbortController): Promise<Outcome> {
    const { writeTimeoutMs } = this.settings;
    const timer = setTimeout(
      () => controller.abort(new WriteAbort(`no answer within write_timeout (${writeTimeoutMs}ms)`, true)),
      writeTimeoutMs,
    );
    timer.unref();
    const abandoned = new Promise<never>((_, reject) => {
      if (controller.signal.aborted) reject(controller.signal.reason);
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    try {
      const writing = Promise.resolve().then(() => this.output.write(chunk, { signal: controller.signal }));
      // A write given up at the deadline may still fail later; that answer is not wanted.
      writing.catch(() => {});
      const result = await Promise.race([writing, abandoned]);
      return {
        kind: 'done',
        retry: result?.retry ?? [],
        rejected: result?.reject ?? [],
        ...(result?.retryAfterMs !== undefined && { retryAfterMs: result.retryAfterMs }),
        ...(result?.retryReason !== undefined && { retryReason: result.retryReason }),
      };
    } catch (err) {
      const reason = controller.signal.reason;
      if (controller.signal.aborted && reason instanceof WriteAbort)
        return { kind: reason.timeout ? 'timeout' : 'aborted', error: reason };
      const error = err instanceof Error ? err : new Error(String(err));
      if (err instanceof HaltError) return { kind: 'halt', error };
      if (err instanceof RejectError) return { kind: 'reject', error };
      // Anything unclassified is transient: a bug in an output must not drop data.
      return { kind: 'retryable', error };
    } finally {
      clearTimeout(timer);
    }
  }

  private observe(chunk: Chunk, outcome: Outcome, elapsedMs: number): void {
    const c = this.counters;
    c.flushTimeCount += Math.round(elapsedMs);
    const result = outcome.kind === 'done' && outcome.retry.length > 0 ? 'partial' : outcome.kind;
    this.metrics.flushDuration.observe({ ...this.labels, result }, elapsedMs / 1000);
    if (elapsedMs > this.settings.slowFlushThresholdMs) {
      c.slowFlushCount += 1;
      this.logger.warn(
        { chunk_id: chunk.id, elapsed_ms: Math.round(elapsedMs), records: chunk.count },
        'slow flush',
      );
    }
    if (outcome.kind === 'done') {
      const failed = outcome.rejected.length + outcome.retry.length;
      this.metrics.recordsDelivered.inc(this.labels, chunk.count - failed);
      if (outcome.retry.length > 0) c.rollbackCount += 1;
      if (outcome.rejected.length > 0) {
        c.numErrors += 1;
        this.logger.warn(
          {
            chunk_id: chunk.id,
            rejected: outcome.rejected.length,
            first_reason: outcome.rejected[0]!.reason,
          },
          'sink rejected records',
        );
      }
    } else if (outcome.kind !== 'aborted') {
      c.numErrors += 1;
      if (outcome.kind !== 'reject') c.rollbackCount += 1;
    }
  }

  /**
   * The sink's health from one answer: a halt enters (or prolongs) the halted state; any other
   * answer but a timeout or an abort, to a write begun after the halt, ends it.
   */
  private track(flight: Flight, outcome: Outcome): void {
    if (outcome.kind === 'halt') {
      this.enterHalt(outcome.error, flight.started);
      return;
    }
    const halt = this.halt;
    if (!halt || outcome.kind === 'aborted' || outcome.kind === 'timeout' || flight.started < halt.since)
      return;
    this.halt = undefined;
    this.haltSpans.push({ from: halt.since, to: Date.now() });
    if (this.haltSpans.length > MAX_HALT_SPANS) this.haltSpans.shift();
    this.logger.info({ halted_ms: Date.now() - halt.since, reason: halt.reason }, 'output resumed');
  }

  /** Entries refused before they were buffered, into the dead-letter queue (see OutputBuffer). */
  async deadLetterNow(entries: readonly TaggedEntry[], reason: string): Promise<void> {
    if (entries.length === 0) return;
    this.reportDeadLetters(await this.store.deadLetterNow(entries, reason), 0);
  }

  /** Logs and counts what a settlement dead-lettered or dropped. */
  private reportDeadLetters(report: SettleReport, attempts: number): void {
    for (const d of report.deadLettered)
      this.logger.error(
        { dead_letter_id: d.id, records: d.records, attempts, reason: d.reason },
        'chunk moved to dead-letter queue',
      );
    if (report.droppedFull > 0) {
      this.metrics.recordsDropped.inc({ ...this.labels, reason: 'dead_letter_full' }, report.droppedFull);
      this.logger.error({ records: report.droppedFull }, 'dead-letter queue full: dropped its oldest chunks');
    }
    if (report.droppedDisabled > 0) {
      this.metrics.recordsDropped.inc(
        { ...this.labels, reason: 'dead_letter_disabled' },
        report.droppedDisabled,
      );
      this.logger.error(
        { records: report.droppedDisabled },
        'records failed for good and dead_letter is disabled: dropped',
      );
    }
  }

  /** From the outcome to what the store does with the chunk. */
  private decide(lease: Lease, outcome: Outcome): Settlement {
    const { chunk } = lease;
    const now = Date.now();
    const policy = this.settings.retry;
    let dead: DeadGroup[] = [];
    const retryAt = (error: Error, keep?: readonly TaggedEntry[], avoid = false): Settlement => {
      const failingSince = lease.failingSince ?? now;
      // Time halted is the sink's state, not this data's: it does not count against retry.timeout.
      const giveUp = giveUpReason(policy, lease.retries, failingSince + this.haltedSince(failingSince), now);
      if (giveUp) {
        const reason = `${giveUp}; last error: ${reasonOf(error)}`;
        // Only what is left goes: the records delivered or rejected in this write are settled.
        if (keep) return { kind: 'done', dead: [...dead, { reason, entries: keep }] };
        return { kind: 'dead', dead, reason };
      }
      const delay = retryDelay(policy, lease.retries, error);
      this.logger.warn(
        { chunk_id: chunk.id, retry: lease.retries + 1, retry_in_ms: delay, err: reasonOf(error) },
        'flush failed; will retry',
      );
      return {
        kind: 'retry',
        dead,
        at: now + delay,
        ...(keep && { keep }),
        counted: true,
        failingSince,
        avoid,
      };
    };
    switch (outcome.kind) {
      case 'done': {
        dead = groupByReason(outcome.rejected);
        if (outcome.retry.length > 0) return retryAt(partialRetryError(outcome), outcome.retry);
        // Every entry refused for one reason: the chunk moves as it is stored, not re-encoded.
        if (dead.length === 1 && outcome.rejected.length === chunk.count)
          return { kind: 'dead', dead: [], reason: dead[0]!.reason };
        return { kind: 'done', dead };
      }
      case 'reject':
        return { kind: 'dead', dead, reason: reasonOf(outcome.error) };
      case 'retryable':
        return retryAt(outcome.error);
      case 'timeout':
        return retryAt(outcome.error, undefined, true);
      case 'halt':
        // Probed again at the backoff of the halt, not of this chunk.
        return this.handBack(lease, now + retryDelay(policy, (this.halt?.probes ?? 1) - 1));
      case 'aborted':
        return this.handBack(lease);
    }
  }

  /** Back to the store uncounted: by `at`, another write (here or in another process) may take it. */
  private handBack(lease: Lease, at = Date.now()): Settlement {
    return {
      kind: 'retry',
      dead: [],
      at,
      counted: false,
      failingSince: lease.failingSince ?? Date.now(),
      avoid: false,
    };
  }

  /** Milliseconds this output spent halted since `from` (epoch ms), up to now. */
  private haltedSince(from: number): number {
    const now = Date.now();
    let ms = this.halt ? now - Math.max(from, this.halt.since) : 0;
    for (const span of this.haltSpans) if (span.to > from) ms += span.to - Math.max(from, span.from);
    return ms;
  }

  private enterHalt(error: Error, started: number): void {
    const reason = reasonOf(error);
    if (this.halt) {
      // Writes already running when the halt began answer alike: only probes grow the backoff.
      if (started >= this.halt.since) this.halt.probes += 1;
      this.halt.reason = reason;
      return;
    }
    this.halt = { reason, since: Date.now(), probes: 1 };
    this.logger.error(
      { reason },
      'output halted: the sink refuses every write; data is kept and the sink probed until it takes it',
    );
  }

  // --- admission --------------------------------------------------------------------------

  /** A shared store's size changes in other processes: re-read it while senders wait. */
  private watchRoom(): void {
    if (this.roomTimer) return;
    this.roomTimer = setInterval(() => {
      if (this.admission.waiting === 0) {
        clearInterval(this.roomTimer);
        this.roomTimer = undefined;
        return;
      }
      this.store
        .prepare(0, { wait: false }, () => this.stopping)
        .then(
          () => this.admission.wake(),
          () => {},
        );
    }, ROOM_POLL_MS);
    this.roomTimer.unref();
  }

  private shuttingDown(): BackpressureError {
    return new BackpressureError(`output ${this.id} is shutting down`);
  }

  // --- shutdown ---------------------------------------------------------------------------

  private async shutdown(deadline: number): Promise<void> {
    this.stopping = true;
    this.admission.close(`output ${this.id} is shutting down`);
    clearInterval(this.roomTimer);
    this.roomTimer = undefined;
    try {
      await beforeDeadline(this.store.sealOpen(), deadline);
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'sealing open chunks at shutdown failed');
    }
    if (this.settings.flushAtShutdown && this.running) {
      this.empty = false;
      this.pump();
      // Until nothing is ready (what waits on a backoff stays for a later run or another replica).
      while (Date.now() < deadline && !(this.empty && this.flights.size === 0 && !this.pumping))
        await this.settledOr(Math.min(20, deadline - Date.now()));
    }
    this.running = false;
    clearTimeout(this.wakeTimer);
    // Past the deadline: writes still running are abandoned and their chunks handed back.
    for (const f of this.flights) f.controller.abort(new WriteAbort('shutdown deadline passed', false));
    const left = [...this.flights].map((f) => f.done);
    await Promise.race([Promise.allSettled(left), new Promise((r) => setTimeout(r, 1000).unref())]);
    this.storeStopped = true;
    const lost = await this.store.stop();
    if (lost > 0) {
      this.metrics.recordsDropped.inc({ ...this.labels, reason: 'shutdown' }, lost);
      this.logger.error(
        { records: lost },
        'shutdown deadline passed; buffered records not delivered are lost',
      );
    }
  }

  private settledOr(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.settledWaiters.indexOf(done);
        if (i >= 0) this.settledWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.settledWaiters.push(done);
    });
  }
}

/** A write that left some entries to retry, as the error the retry is for. */
function partialRetryError(outcome: Extract<Outcome, { kind: 'done' }>): RetryableError {
  const why = outcome.retryReason === undefined ? '' : `: ${outcome.retryReason}`;
  return new RetryableError(`${outcome.retry.length} records to retry${why}`, {
    ...(outcome.retryAfterMs !== undefined && { retryAfterMs: outcome.retryAfterMs }),
  });
}

/** One dead-letter group per reason, in linear time. */
export function groupByReason(rejected: readonly Rejection[]): DeadGroup[] {
  const byReason = new Map<string, TaggedEntry[]>();
  for (const r of rejected) {
    const list = byReason.get(r.reason);
    if (list) list.push(r.entry);
    else byReason.set(r.reason, [r.entry]);
  }
  return [...byReason].map(([reason, entries]) => ({ reason, entries }));
}

export function reasonOf(error: Error): string {
  if (error instanceof RetryableError || error instanceof RejectError || error instanceof HaltError)
    return error.message;
  if (error instanceof WriteAbort) return error.message;
  return `${error.name}: ${errorMessage(error)}`;
}
