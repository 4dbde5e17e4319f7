import { randomUUID } from 'node:crypto';
import { DelayedError, type Job, Queue, Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import type { BufferSettings } from '../../config/schema.ts';
import type { Batch } from '../../core/batch.ts';
import { BackpressureError, errorMessage } from '../../core/errors.ts';
import type { EmitOptions } from '../../inputs/input.ts';
import { type Logger, rateLimited } from '../../logger.ts';
import type { BufferStats, Metrics } from '../../metrics/registry.ts';
import type { Output, Rejection } from '../../outputs/output.ts';
import type { BufferBackend, BufferDeps, DeadLetterQueue, OutputBuffer } from '../buffer.ts';
import { batchesOf, coalesce, makeChunk, splitBatch } from '../chunk.ts';
import { type BufferCounters, deliver, newCounters, type Outcome, reasonOf } from '../deliver.ts';
import { giveUpReason, retryDelay } from '../retry.ts';
import { createClient, describeTarget, type RedisSettings } from './connection.ts';
import { RedisDeadLetterQueue } from './dead-letter.ts';
import { decodeFrames, encodeFrames } from './frames.ts';
import { OutputKeys, QUEUE_NAME } from './keys.ts';
import {
  BEGIN,
  DROP_OLDEST,
  HEARTBEAT,
  ORPHANS,
  PENDING,
  type RedisClient,
  SEAL,
  SETTLE,
  STAGE,
  STATS,
} from './scripts.ts';

/**
 * The durable backend: every output's chunks live in Redis, shared by all replicas, so any
 * replica can deliver any chunk and a dead pod strands nothing.
 *
 *   stage ──STAGE (RPUSH)──► open chunk {p:out:ID}:c:<id> (one per replica) ── ack the sender
 *                       │ size | records (STAGE) · flush_interval timer (SEAL) · dead replica (HEARTBEAT)
 *                       ▼
 *                    sealed ──Queue.add(jobId = chunk id)──► BullMQ `flush` queue
 *                                                               │ Worker × flush_thread_count
 *                       BEGIN + LRANGE ─► deliver() ─► SETTLE: done (forget) · retry (rewrite,
 *                       moveToDelayed with our backoff) · dead (move to {p:out:ID}:d:<id>)
 *
 *   every recovery_timeout/6: HEARTBEAT renews this replica's lease and seals the open
 *   chunks of replicas whose lease expired; ORPHANS re-queues sealed chunks that lost their
 *   job (a crash between seal and Queue.add). BullMQ's stalled check re-delivers chunks a
 *   dead worker held. Key names: keys.ts; the scripts: scripts.ts.
 */
export class RedisBackend implements BufferBackend {
  readonly type = 'redis';
  readonly shared = true;
  /** This process's identity in leases and open chunks. */
  readonly replica = randomUUID();
  readonly settings: RedisSettings;
  /** Our scripts: auto-pipelined, and failing fast (no offline queue) so senders get backpressure. */
  readonly client: RedisClient;
  /** BullMQ's queues and workers (each worker duplicates it for its blocking connection). */
  readonly bull: RedisClient;
  private readonly logger: Logger;
  /** Started and not stopped: heartbeats run for these. */
  private readonly buffers = new Set<RedisOutputBuffer>();
  private readonly created = new Set<RedisOutputBuffer>();
  private readyWaiters: (() => void)[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private wasReady = false;
  private closed: Promise<void> | undefined;

  constructor(settings: RedisSettings, logger: Logger) {
    this.settings = settings;
    this.logger = logger;
    this.client = createClient(settings, {
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 10_000,
      connectionName: `estuary:${this.replica}`,
    });
    this.bull = createClient(settings, {
      maxRetriesPerRequest: null,
      connectionName: `estuary-queue:${this.replica}`,
    });
    const warn = rateLimited(10_000, (suppressed) =>
      this.logger.warn({ err: this.lastError, suppressed }, 'redis connection error'),
    );
    for (const c of [this.client, this.bull]) {
      c.on('error', (err: Error) => {
        this.lastError = errorMessage(err);
        warn();
      });
    }
    this.client.on('ready', () => {
      if (!this.wasReady) this.logger.info({ redis: describeTarget(settings) }, 'redis buffer connected');
      this.wasReady = true;
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of waiters) w();
    });
    this.client.on('close', () => {
      if (this.wasReady && !this.closed)
        this.logger.error(
          { redis: describeTarget(settings) },
          'redis unreachable: refusing data (503 / no ack) until it is back',
        );
      this.wasReady = false;
    });
  }
  private lastError = '';

  create(output: Output, settings: BufferSettings, deps: BufferDeps): OutputBuffer {
    const buffer = new RedisOutputBuffer(this, output, settings, deps);
    this.created.add(buffer);
    return buffer;
  }

  ready(): boolean {
    return this.client.status === 'ready';
  }

  /** The first wait for Redis at startup, shared by every output (so N outputs wait once). */
  startupConnect(): Promise<boolean> {
    this.startupWait ??= this.connect(10_000);
    return this.startupWait;
  }
  private startupWait: Promise<boolean> | undefined;

  /** Resolves true once connected, or false after `timeoutMs`. */
  connect(timeoutMs = 10_000): Promise<boolean> {
    if (this.ready()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      timer.unref();
      this.readyWaiters.push(waiter);
    });
  }

  /** Redis WAIT after this connection's writes, when `wait_replicas` is set. */
  async waitReplicas(keys: OutputKeys): Promise<void> {
    const { waitReplicas: wanted, waitTimeoutMs: timeout } = this.settings;
    if (wanted === 0) return;
    let acked: number;
    if (this.client instanceof Cluster) {
      // WAIT has no key: a pipeline with one keyed command sends it to the output's node.
      const replies = await this.client.pipeline().exists(keys.stats).wait(wanted, timeout).exec();
      const [err, n] = replies?.[1] ?? [new Error('no reply to WAIT'), 0];
      if (err) throw err;
      acked = Number(n);
    } else {
      acked = await this.client.wait(wanted, timeout);
    }
    if (acked < wanted)
      throw new BackpressureError(
        `only ${acked} of ${wanted} Redis replicas acknowledged within ${timeout}ms`,
      );
  }

  /** Leases, recovery, orphan sweep, stats: run for every started buffer. */
  register(buffer: RedisOutputBuffer): void {
    this.buffers.add(buffer);
    const every = this.heartbeatIntervalMs();
    this.heartbeatTimer ??= setInterval(() => {
      for (const b of this.buffers) void b.heartbeat().catch((err) => b.logMaintenanceError(err));
    }, every).unref();
    this.statsTimer ??= setInterval(
      () => {
        for (const b of this.buffers) void b.refreshStats().catch(() => {});
      },
      Math.min(1000, every),
    ).unref();
  }

  unregister(buffer: RedisOutputBuffer): void {
    this.buffers.delete(buffer);
  }

  heartbeatIntervalMs(): number {
    return Math.max(100, Math.round(this.settings.recoveryTimeoutMs / 6));
  }

  /** The dead-letter queue of an output, for `estuary dlq` (no buffer, no worker). */
  deadLetterQueue(outputId: string): { queue: DeadLetterQueue; close: () => Promise<void> } {
    const keys = new OutputKeys(this.settings.prefix, outputId);
    const queue = newQueue(this, keys);
    return {
      queue: new RedisDeadLetterQueue(this.client, keys, outputId, (ids) => addJobs(queue, ids)),
      close: () => queue.close(),
    };
  }

  /**
   * Stops at once as SIGKILL would, for tests of recovery: nothing sealed, leases left to
   * expire, chunks in flight left locked (BullMQ's stalled check hands them to others).
   */
  async crash(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.heartbeatTimer);
      clearInterval(this.statsTimer);
      await Promise.allSettled([...this.created].map((b) => b.crash()));
      this.client.disconnect();
      this.bull.disconnect();
    })();
    return this.closed;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.heartbeatTimer);
      clearInterval(this.statsTimer);
      // Buffers are stopped first (Estuary does); one that was not lets go of its worker now.
      await Promise.allSettled([...this.created].map((b) => b.stop(Date.now())));
      await Promise.allSettled([this.client, this.bull].map((c) => quit(c)));
    })();
    return this.closed;
  }
}

function quit(c: RedisClient): Promise<unknown> {
  if (c.status !== 'ready') {
    c.disconnect();
    return Promise.resolve();
  }
  return Promise.race([c.quit(), new Promise((r) => setTimeout(r, 1000).unref())]).finally(() =>
    c.disconnect(),
  );
}

function newQueue(backend: RedisBackend, keys: OutputKeys): Queue {
  const queue = new Queue(QUEUE_NAME, {
    connection: backend.bull,
    prefix: keys.bullPrefix,
    // BullMQ's event stream is not read by Estuary: keep it short.
    streams: { events: { maxLen: 100 } },
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  queue.on('error', () => {});
  return queue;
}

/** Idempotent: a job id that exists is left alone. */
async function addJobs(queue: Queue, chunkIds: readonly string[]): Promise<void> {
  if (chunkIds.length === 0) return;
  await queue.addBulk(chunkIds.map((id) => ({ name: 'chunk', data: {}, opts: { jobId: id } })));
}

/** How long a total seen in a Redis reply stands in for a fresh read in `reserve`. */
const KNOWN_FRESH_MS = 100;

interface Snapshot {
  bytes: number;
  stageLength: number;
  stageBytes: number;
  queueLength: number;
  queueBytes: number;
  deadLetterChunks: number;
  deadLetterRecords: number;
  /** Next retry, epoch ms of this process, or undefined. */
  nextRetryAt: number | undefined;
}

export class RedisOutputBuffer implements OutputBuffer {
  readonly id: string;
  readonly type: string;
  readonly settings: BufferSettings;
  readonly deadLetter: DeadLetterQueue;
  private readonly backend: RedisBackend;
  private readonly client: RedisClient;
  private readonly output: Output;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly keys: OutputKeys;
  private readonly queue: Queue;
  private readonly counters: BufferCounters = newCounters();
  private worker: Worker | undefined;
  private snapshot: Snapshot = {
    bytes: 0,
    stageLength: 0,
    stageBytes: 0,
    queueLength: 0,
    queueBytes: 0,
    deadLetterChunks: 0,
    deadLetterRecords: 0,
    nextRetryAt: undefined,
  };
  /** Bytes this output holds in Redis (all replicas), as last seen, and when. */
  private knownBytes = 0;
  private knownAt = 0;
  private readonly sealTimers = new Map<string, NodeJS.Timeout>();
  private roomWaiters: (() => void)[] = [];
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private readonly warnMaintenance: () => void;
  private lastMaintenanceError = '';

  constructor(backend: RedisBackend, output: Output, settings: BufferSettings, deps: BufferDeps) {
    this.backend = backend;
    this.client = backend.client;
    this.output = output;
    this.id = output.id;
    this.type = output.type;
    this.settings = settings;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.keys = new OutputKeys(backend.settings.prefix, output.id);
    this.queue = newQueue(backend, this.keys);
    this.deadLetter = new RedisDeadLetterQueue(this.client, this.keys, this.id, (ids) => this.enqueue(ids));
    this.warnMaintenance = rateLimited(30_000, (suppressed) =>
      this.logger.warn({ err: this.lastMaintenanceError, suppressed }, 'redis buffer maintenance failed'),
    );
  }

  private get leaseMs(): number {
    return Math.round(this.backend.settings.recoveryTimeoutMs / 2);
  }

  async reserve(bytes: number, options: EmitOptions): Promise<void> {
    const limit = this.settings.totalLimitSize;
    if (this.stopping) throw new BackpressureError(`output ${this.id} is shutting down`);
    if (!this.backend.ready()) {
      if (!options.wait) throw new BackpressureError(`output ${this.id}: redis buffer unreachable`);
      // A sender that waits (forward) is paused until Redis is back.
      while (!this.backend.ready()) {
        if (this.stopping) throw new BackpressureError(`output ${this.id} is shutting down`);
        await this.backend.connect(500);
      }
    }
    // The limit is global: other replicas fill the same buffer. The total this replica got
    // back from Redis (every stage and flush reply carries it) is trusted while it is at most
    // KNOWN_FRESH_MS old and leaves half the room; otherwise it is read again.
    if (Date.now() - this.knownAt > KNOWN_FRESH_MS || this.knownBytes + bytes > limit / 2)
      await this.readBytes();
    if (this.knownBytes + bytes <= limit) return;
    switch (this.settings.overflowAction) {
      case 'drop_oldest_chunk':
        return this.dropOldest(bytes);
      case 'block':
        if (options.wait) {
          while (this.knownBytes + bytes > limit && this.knownBytes > 0) {
            if (this.stopping) throw new BackpressureError(`output ${this.id} is shutting down`);
            await this.roomOrTimeout(200);
            await this.readBytes();
          }
          return;
        }
        throw new BackpressureError(`output ${this.id} buffer is full (${limit} bytes)`);
      default:
        throw new BackpressureError(`output ${this.id} buffer is full (${limit} bytes)`);
    }
  }

  /**
   * Appends the batch to this replica's open chunk. The script calls of every output of a
   * batch, and of concurrent senders, leave in one auto-pipelined write.
   */
  async stage(batch: Batch): Promise<void> {
    this.counters.emitCount += 1;
    this.counters.emitRecords += batch.count;
    const { chunkLimitSize, chunkLimitRecords } = this.settings;
    const maxRecords = Number.isFinite(chunkLimitRecords) ? chunkLimitRecords : Number.MAX_SAFE_INTEGER;
    const calls = splitBatch(batch, chunkLimitSize, chunkLimitRecords).map((piece) =>
      STAGE.run(
        this.client,
        [this.keys.base],
        [
          this.backend.replica,
          randomUUID(),
          encodeFrames([piece]),
          piece.count,
          piece.bytes,
          chunkLimitSize,
          maxRecords,
          this.leaseMs,
        ],
      ),
    );
    const results = await Promise.allSettled(calls);
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'fulfilled') this.afterStage(r.value as (number | string)[]);
      else failure ??= r.reason;
    }
    try {
      if (failure === undefined) await this.backend.waitReplicas(this.keys);
    } catch (err) {
      failure = err;
    }
    if (failure === undefined) return;
    if (failure instanceof BackpressureError) throw failure;
    throw new BackpressureError(`output ${this.id}: redis buffer unavailable (${errorMessage(failure)})`);
  }

  private afterStage([total, opened, ...sealed]: (number | string)[]): void {
    this.know(Number(total));
    if (opened) {
      const timer = setTimeout(() => this.sealLater(String(opened)), this.settings.flushIntervalMs);
      timer.unref();
      this.sealTimers.set(String(opened), timer);
    }
    if (sealed.length > 0) this.sealed(sealed.map(String));
  }

  /** Chunks just sealed: forget their timers, queue them. */
  private sealed(ids: string[]): void {
    for (const id of ids) {
      clearTimeout(this.sealTimers.get(id));
      this.sealTimers.delete(id);
    }
    void this.enqueue(ids);
  }

  /** From a timer: a failure during shutdown is logged (another replica seals the chunk), never unhandled. */
  private sealLater(chunkId: string): void {
    this.sealOpen(chunkId).catch((err) => this.logMaintenanceError(err));
  }

  /** Seals this replica's open chunk (`chunkId`, or whichever is open); retried while Redis is away. */
  private async sealOpen(chunkId?: string): Promise<void> {
    if (chunkId) this.sealTimers.delete(chunkId);
    try {
      const ids = (await SEAL.run(
        this.client,
        [this.keys.base],
        [this.backend.replica, chunkId ?? ''],
      )) as string[];
      this.sealed(ids);
    } catch (err) {
      if (this.stopping || !chunkId) throw err;
      this.logMaintenanceError(err);
      const timer = setTimeout(() => this.sealLater(chunkId), 500);
      timer.unref();
      this.sealTimers.set(chunkId, timer);
    }
  }

  /** Queue.add; when it fails the orphan sweep queues the chunk later. */
  private async enqueue(ids: string[]): Promise<void> {
    try {
      await addJobs(this.queue, ids);
    } catch (err) {
      this.logMaintenanceError(err);
    }
  }

  async start(): Promise<void> {
    if (!(await this.backend.startupConnect())) {
      this.logger.warn('redis not reachable yet: refusing data until it is (the buffer connects by itself)');
    }
    const third = Math.max(1000, Math.round(this.backend.settings.recoveryTimeoutMs / 3));
    const worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.backend.bull,
      prefix: this.keys.bullPrefix,
      concurrency: this.settings.flushThreadCount,
      // A dead worker's chunk is back in the queue within recovery_timeout.
      lockDuration: third,
      stalledInterval: third,
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      drainDelay: 1,
    });
    const warn = rateLimited(30_000, (suppressed) =>
      this.logger.warn({ err: this.lastMaintenanceError, suppressed }, 'flush worker error'),
    );
    worker.on('error', (err) => {
      this.lastMaintenanceError = errorMessage(err);
      warn();
    });
    this.worker = worker;
    this.backend.register(this);
    void this.heartbeat().catch((err) => this.logMaintenanceError(err));
  }

  /**
   * One flush of one chunk: BullMQ hands us the job (id = chunk id) and holds its lock; the
   * outcome is written back in one SETTLE.
   */
  private async process(job: Job, token: string | undefined): Promise<void> {
    const chunkId = job.id!;
    this.active += 1;
    try {
      const [begun, data] = await Promise.all([
        BEGIN.run(this.client, [this.keys.base], [chunkId]),
        this.client.lrangeBuffer(this.keys.chunk(chunkId), 0, -1),
      ]);
      if (!begun) return; // delivered, dropped or purged meanwhile
      const [retriesText, failingSinceText] = begun as [string, string];
      const retries = Number(retriesText);
      const failingSince = failingSinceText ? Number(failingSinceText) : undefined;
      let outcome: Outcome;
      let count = 0;
      try {
        const chunk = makeChunk(chunkId, coalesce(decodeFrames(data)), retries);
        count = chunk.count;
        outcome = await deliver(
          {
            output: this.output,
            counters: this.counters,
            metrics: this.metrics,
            logger: this.logger,
            slowFlushThresholdMs: this.settings.slowFlushThresholdMs,
          },
          chunk,
        );
      } catch (err) {
        outcome = { kind: 'fatal', error: new Error(`unreadable chunk: ${errorMessage(err)}`) };
      }
      const retryAt = await this.settle(chunkId, count, retries, failingSince, outcome);
      if (retryAt !== undefined) {
        await job.moveToDelayed(retryAt, token);
        throw new DelayedError();
      }
    } finally {
      this.active -= 1;
      if (this.active === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /** Writes the outcome; returns when to retry (epoch ms), or undefined when the chunk is settled. */
  private async settle(
    chunkId: string,
    count: number,
    retries: number,
    failingSince: number | undefined,
    outcome: Outcome,
  ): Promise<number | undefined> {
    const attempts = retries + 1;
    const rejected = outcome.kind === 'done' || outcome.kind === 'partial' ? outcome.rejected : [];
    const groups = groupByReason(rejected).map(({ reason, entries }) => {
      const batches = batchesOf(entries);
      return {
        id: randomUUID(),
        reason,
        frames: encodeFrames(batches),
        count: entries.length,
        bytes: batches.reduce((n, b) => n + b.bytes, 0),
      };
    });
    let action: 'done' | 'retry' | 'dead' = 'done';
    let reason = '';
    let delay = 0;
    let rewrite: [string, Buffer | string, number, number] = ['0', '', 0, 0];
    let remaining = count;
    const since = failingSince ?? Date.now();
    if (outcome.kind === 'fatal') {
      action = 'dead';
      reason = reasonOf(outcome.error);
    } else if (outcome.kind === 'retryable' || outcome.kind === 'partial') {
      let error: Error;
      if (outcome.kind === 'partial') {
        const batches = batchesOf(outcome.retry);
        rewrite = [
          '1',
          encodeFrames(batches),
          outcome.retry.length,
          batches.reduce((n, b) => n + b.bytes, 0),
        ];
        remaining = outcome.retry.length;
        error = new Error(`${outcome.retry.length} records to retry`);
      } else {
        error = outcome.error;
      }
      const giveUp = giveUpReason(this.settings.retry, retries, since);
      if (giveUp) {
        action = 'dead';
        reason = `${giveUp}; last error: ${reasonOf(error)}`;
      } else {
        action = 'retry';
        delay = retryDelay(this.settings.retry, retries, error);
        this.logger.warn(
          { chunk_id: chunkId, retry: retries + 1, retry_in_ms: delay, err: reasonOf(error) },
          'flush failed; will retry',
        );
      }
    }
    const deadId = randomUUID();
    const reply = (await SETTLE.run(
      this.client,
      [this.keys.base],
      [
        chunkId,
        action,
        attempts,
        this.settings.deadLetter.enabled ? '1' : '0',
        this.settings.deadLetter.maxSize,
        delay,
        since,
        deadId,
        reason,
        ...rewrite,
        ...groups.flatMap((g) => [g.id, g.reason, g.frames, g.count, g.bytes]),
      ],
    )) as number[];
    const [total, existed, droppedFull, droppedDisabled] = reply.map(Number) as [
      number,
      number,
      number,
      number,
    ];
    this.know(total);
    this.notifyRoom();
    const labels = { plugin_id: this.id, type: this.type };
    for (const g of groups) this.logDead(g.id, g.count, attempts, g.reason);
    if (action === 'dead' && existed) this.logDead(deadId, remaining, attempts, reason);
    if (droppedFull > 0) {
      this.metrics.recordsDropped.inc({ ...labels, reason: 'dead_letter_full' }, droppedFull);
      this.logger.error({ records: droppedFull }, 'dead-letter queue full: dropped its oldest chunks');
    }
    if (droppedDisabled > 0) {
      this.metrics.recordsDropped.inc({ ...labels, reason: 'dead_letter_disabled' }, droppedDisabled);
      this.logger.error(
        { records: droppedDisabled, reason: reason || groups[0]?.reason },
        'records failed for good and dead_letter is disabled: dropped',
      );
    }
    if (action !== 'retry' || !existed) return undefined;
    this.counters.retryCount += 1;
    return Date.now() + delay;
  }

  private logDead(id: string, records: number, attempts: number, reason: string): void {
    if (!this.settings.deadLetter.enabled) return;
    this.logger.error({ dead_letter_id: id, records, attempts, reason }, 'chunk moved to dead-letter queue');
  }

  private async dropOldest(bytes: number): Promise<void> {
    const staleMs = 2 * Math.max(1000, Math.round(this.backend.settings.recoveryTimeoutMs / 3));
    const reply = (await DROP_OLDEST.run(
      this.client,
      [this.keys.base],
      [bytes, this.settings.totalLimitSize, staleMs],
    ).catch((err: unknown) => {
      throw new BackpressureError(`output ${this.id}: redis buffer unavailable (${errorMessage(err)})`);
    })) as (number | string)[];
    const [total, records, ...ids] = reply;
    this.know(Number(total));
    if (ids.length === 0) return;
    this.metrics.recordsDropped.inc(
      { plugin_id: this.id, type: this.type, reason: 'overflow' },
      Number(records),
    );
    this.logger.warn(
      { chunk_ids: ids, records: Number(records) },
      'buffer full: dropped oldest chunk (overflow_action drop_oldest_chunk)',
    );
    // Their jobs find no chunk and complete; removing them now just saves the trip.
    for (const id of ids) void this.queue.remove(String(id)).catch(() => {});
  }

  /** Lease, recovery of dead replicas' open chunks, and the orphan sweep. */
  async heartbeat(): Promise<void> {
    const { recoveryTimeoutMs } = this.backend.settings;
    const sealed = (await HEARTBEAT.run(
      this.client,
      [this.keys.base],
      [this.backend.replica, this.leaseMs, this.settings.flushIntervalMs + recoveryTimeoutMs, '0'],
    )) as string[];
    if (sealed.length > 0) {
      this.logger.info(
        { chunks: sealed.length },
        'sealed open chunks of a replica that stopped heartbeating',
      );
      this.sealed(sealed);
    }
    await this.sweepOrphans();
  }

  /** Sealed chunks without a BullMQ job get one (idempotent: jobId = chunk id). */
  async sweepOrphans(minAgeMs = this.backend.heartbeatIntervalMs()): Promise<number> {
    let offset = 0;
    let found = 0;
    const page = 500;
    while (offset >= 0) {
      const [next, ...ids] = (await ORPHANS.run(
        this.client,
        [this.keys.base, this.keys.jobPrefix],
        [minAgeMs, offset, page],
      )) as [number, ...string[]];
      if (ids.length > 0) await addJobs(this.queue, ids);
      found += ids.length;
      offset = Number(next);
    }
    if (found > 0) this.logger.info({ chunks: found }, 're-queued sealed chunks that had no job');
    return found;
  }

  logMaintenanceError(err: unknown): void {
    this.lastMaintenanceError = errorMessage(err);
    this.warnMaintenance();
  }

  async refreshStats(): Promise<void> {
    const r = ((await STATS.run(this.client, [this.keys.base], [])) as number[]).map(Number);
    this.snapshot = {
      bytes: r[0]!,
      stageLength: r[1]!,
      stageBytes: r[2]!,
      queueLength: r[3]!,
      queueBytes: r[4]!,
      deadLetterChunks: r[5]!,
      deadLetterRecords: r[6]!,
      nextRetryAt: r[7]! >= 0 ? Date.now() + r[7]! : undefined,
    };
    this.know(r[0]!);
    this.notifyRoom();
  }

  /** Counters of this process; buffer sizes of the output in Redis (all replicas), as last refreshed. */
  stats(): BufferStats {
    const s = this.snapshot;
    return {
      ...this.counters,
      stageLength: s.stageLength,
      stageBytes: s.stageBytes,
      queueLength: s.queueLength,
      queueBytes: s.queueBytes,
      totalLimitBytes: this.settings.totalLimitSize,
      retryWait: s.nextRetryAt === undefined ? 0 : Math.max(0, (s.nextRetryAt - Date.now()) / 1000),
      deadLetterChunks: s.deadLetterChunks,
      deadLetterRecords: s.deadLetterRecords,
    };
  }

  stop(deadline: number): Promise<void> {
    this.stopped ??= this.shutdown(deadline);
    return this.stopped;
  }

  /** See RedisBackend.crash. */
  async crash(): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    this.stopped = Promise.resolve();
    for (const t of this.sealTimers.values()) clearTimeout(t);
    this.sealTimers.clear();
    await this.worker?.close(true);
    await this.queue.close();
  }

  private async shutdown(deadline: number): Promise<void> {
    this.stopping = true;
    this.releaseRoomWaiters();
    this.backend.unregister(this);
    for (const t of this.sealTimers.values()) clearTimeout(t);
    this.sealTimers.clear();
    const bounded = <T>(p: Promise<T>) => beforeDeadline(p, deadline);
    // What this replica staged is sealed and queued: any replica can deliver it from here.
    await bounded(this.sealOpen()).catch((err) => this.logMaintenanceError(err));
    if (this.settings.flushAtShutdown && this.worker) await bounded(this.drain(deadline)).catch(() => {});
    if (this.worker) {
      if (this.active > 0) await bounded(new Promise<void>((r) => this.idleWaiters.push(r))).catch(() => {});
      // Forced past the deadline (or when Redis hangs): a chunk still in flight is re-delivered
      // by another replica, as after a crash.
      const worker = this.worker;
      await bounded(worker.close(this.active > 0)).catch(() => worker.close(true).catch(() => {}));
    }
    // The last heartbeat may seal dead replicas' open chunks: queue them like any other.
    await bounded(
      HEARTBEAT.run(this.client, [this.keys.base], [this.backend.replica, 0, Number.MAX_SAFE_INTEGER, '1']),
    )
      .then((sealed) => bounded(this.enqueue(((sealed as unknown[] | null) ?? []).map(String))))
      .catch(() => {});
    await bounded(this.queue.close()).catch(() => {});
  }

  /** Until the chunks queued now are delivered (or wait for a retry, which any replica will make), or the deadline. */
  private async drain(deadline: number): Promise<void> {
    try {
      const ids = await this.client.zrange(this.keys.sealed, 0, '9999');
      while (ids.length > 0 && Date.now() < deadline) {
        const pending = Number(await PENDING.run(this.client, [this.keys.base], ids));
        if (pending === 0) return;
        await new Promise((r) => setTimeout(r, Math.min(20, Math.max(0, deadline - Date.now()))));
      }
    } catch (err) {
      this.logMaintenanceError(err);
    }
  }

  private know(total: number): void {
    this.knownBytes = total;
    this.knownAt = Date.now();
  }

  private async readBytes(): Promise<void> {
    try {
      const bytes = await this.client.hget(this.keys.stats, 'bytes');
      this.know(Number(bytes ?? 0));
    } catch (err) {
      throw new BackpressureError(`output ${this.id}: redis buffer unavailable (${errorMessage(err)})`);
    }
  }

  private roomOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        // A waiter woken by its timer leaves the list, or a long outage would grow it forever.
        const i = this.roomWaiters.indexOf(done);
        if (i >= 0) this.roomWaiters.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.roomWaiters.push(done);
    });
  }

  private notifyRoom(): void {
    if (this.knownBytes < this.settings.totalLimitSize) this.releaseRoomWaiters();
  }

  private releaseRoomWaiters(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) w();
  }
}

function groupByReason(rejected: readonly Rejection[]): { reason: string; entries: Rejection['entry'][] }[] {
  const byReason = new Map<string, Rejection['entry'][]>();
  for (const r of rejected) byReason.set(r.reason, [...(byReason.get(r.reason) ?? []), r.entry]);
  return [...byReason].map(([reason, entries]) => ({ reason, entries }));
}

/** Resolves with the promise, or rejects at `deadline` (epoch ms). */
function beforeDeadline<T>(p: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error('shutdown deadline passed')),
        Math.max(0, deadline - Date.now()),
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
