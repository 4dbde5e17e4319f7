import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import type { BufferSettings } from '../../config/schema.ts';
import type { Batch } from '../../core/batch.ts';
import { beforeDeadline } from '../../core/deadline.ts';
import type { TaggedEntry } from '../../core/entry.ts';
import { BackpressureError, errorMessage } from '../../core/errors.ts';
import { SinkDriver } from '../../delivery/driver.ts';
import type { EmitOptions } from '../../inputs/input.ts';
import { type Logger, rateLimited } from '../../logger.ts';
import type { Output } from '../../outputs/output.ts';
import type { BufferBackend, BufferDeps, DeadLetterQueue, OutputBuffer } from '../buffer.ts';
import { encodeEntries, makeChunk, splitBatch } from '../chunk.ts';
import type { ChunkStore, Lease, Settlement, SettleReport, StoreSizes } from '../store.ts';
import { createClient, describeTarget, type RedisSettings, tlsVerifyError } from './connection.ts';
import { RedisDeadLetterQueue } from './dead-letter.ts';
import { decodeFrames, encodeFrames } from './frames.ts';
import { OutputKeys } from './keys.ts';
import {
  ADOPT,
  DEAD_ADD,
  DROP_OLDEST,
  HEARTBEAT,
  LEASE,
  RENEW,
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
 *                    sealed (in seal order) ──LEASE (oldest ready, any replica)──► the sink driver writes it
 *                       ▲                                                            │
 *                       └── retry time came · lease expired (writer died or hung) ◄── SETTLE: done (forget) ·
 *                                                                 retry (rewrite, back off) · dead ({p:out:ID}:d:<id>)
 *
 *   every recovery_timeout/6: HEARTBEAT renews this replica's lease and seals the open
 *   chunks of replicas whose lease expired. A chunk's lease is renewed while its write runs
 *   and expires within recovery_timeout/3 of its writer's death. Key names: keys.ts; the
 *   scripts: scripts.ts.
 */
export class RedisBackend implements BufferBackend {
  readonly type = 'redis';
  readonly shared = true;
  /** This process's identity in leases and open chunks. */
  readonly replica = randomUUID();
  readonly settings: RedisSettings;
  /** Our scripts: auto-pipelined, and failing fast (no offline queue) so senders get backpressure. */
  readonly client: RedisClient;
  private readonly logger: Logger;
  /** Started and not stopped: heartbeats run for these. */
  private readonly stores = new Set<RedisStore>();
  private readonly created = new Set<RedisStore>();
  private readyWaiters: (() => void)[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private wasReady = false;
  private closed: Promise<void> | undefined;

  constructor(settings: RedisSettings, logger: Logger) {
    this.settings = settings;
    this.logger = logger;
    this.commandTimeoutMs = Math.max(COMMAND_TIMEOUT_MS, settings.waitTimeoutMs + 1000);
    this.client = createClient(settings, {
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A hung Redis (SIGSTOPped, a VM paused, a partition with no RST) fails a command in
      // seconds, as backpressure; WAIT blocks for up to wait_timeout by design.
      commandTimeout: this.commandTimeoutMs,
      connectionName: `estuary:${this.replica}`,
    });
    const warn = rateLimited(10_000, (suppressed) =>
      this.logger.warn({ err: this.lastError, suppressed }, 'redis connection error'),
    );
    this.client.on('error', (err: Error) => {
      this.lastError = tlsVerifyError(err) ?? errorMessage(err);
      warn();
    });
    this.client.on('ready', () => {
      if (!this.wasReady) this.logger.info({ redis: describeTarget(settings) }, 'redis buffer connected');
      this.wasReady = true;
      this.pingSent = 0;
      this.lastPing = 0;
      this.answering = true;
      this.wakeWaiters();
      this.probe();
    });
    this.pingTimer = setInterval(() => this.probe(), PING_CHECK_MS).unref();
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
    const store = new RedisStore(this, output.id, settings, deps.logger);
    this.created.add(store);
    return new SinkDriver(output, store, settings, deps);
  }

  /** Connected, and the last PING was answered in time (a frozen Redis keeps its socket open). */
  ready(): boolean {
    return this.client.status === 'ready' && this.answering;
  }

  /** Every command's timeout: COMMAND_TIMEOUT_MS, longer when WAIT may block longer. */
  readonly commandTimeoutMs: number;

  /**
   * The Redis clock at which a STAGE sent now is given up (by our command timeout, less
   * STAGE_MARGIN_MS): Redis refuses to run it later, so a staging the sender saw fail (no
   * ack, 503) is not stored when a frozen Redis runs it after all, and the re-send is
   * buffered once. 0 (no deadline) until the clock offset is known.
   */
  stageDeadline(): number {
    if (this.clockOffset === undefined) return 0;
    return Math.round(Date.now() + this.clockOffset + this.commandTimeoutMs - STAGE_MARGIN_MS);
  }

  /** Redis clock − ours (ms), from the last probe answered within 250 ms. */
  private clockOffset: number | undefined;

  private answering = true;
  /** When the PING in flight was sent; 0 when none is. */
  private pingSent = 0;
  private lastPing = 0;
  private lastCheck = 0;
  private readonly pingTimer: NodeJS.Timeout;

  /**
   * Every PING_CHECK_MS: a PING at most every PING_EVERY_MS; one unanswered after
   * PING_DEADLINE_MS makes the buffer not ready (HTTP 503, forward unacked and paused,
   * /readyz 503) until a PING is answered again. One log line each way.
   */
  private probe(): void {
    if (this.closed || this.client.status !== 'ready') {
      this.pingSent = 0;
      return;
    }
    const now = Date.now();
    // A check that comes late found our event loop stalled (GC, a big batch): the answer may
    // be waiting unread in the socket, so the next check judges.
    const stalled = now - this.lastCheck > PING_CHECK_MS * 3;
    this.lastCheck = now;
    if (this.pingSent !== 0) {
      if (this.answering && !stalled && now - this.pingSent > PING_DEADLINE_MS) {
        this.answering = false;
        this.logger.error(
          { redis: describeTarget(this.settings), waited_ms: now - this.pingSent },
          'redis not answering: refusing data (503 / no ack) until it answers',
        );
      }
      return;
    }
    if (now - this.lastPing < PING_EVERY_MS) return;
    const sent = now;
    this.pingSent = sent;
    this.lastPing = sent;
    this.client.time().then(
      ([sec, usec]) => {
        const now = Date.now();
        if (now - sent < 250) this.clockOffset = Number(sec) * 1000 + Number(usec) / 1000 - (sent + now) / 2;
        if (this.pingSent !== sent) return;
        this.pingSent = 0;
        if (this.answering) return;
        this.answering = true;
        this.logger.info(
          { redis: describeTarget(this.settings), waited_ms: Date.now() - sent },
          'redis answering again: taking data',
        );
        this.wakeWaiters();
      },
      () => {
        // Timed out (commandTimeout) or the connection closed: the next PING decides.
        if (this.pingSent === sent) this.pingSent = 0;
      },
    );
  }

  private wakeWaiters(): void {
    if (!this.ready()) return;
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
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

  /** Leases of replicas and chunks, recovery, stats: run for every started store. */
  register(store: RedisStore): void {
    this.stores.add(store);
    const every = this.heartbeatIntervalMs();
    this.heartbeatTimer ??= setInterval(() => {
      for (const s of this.stores) void s.heartbeat().catch((err) => s.logMaintenanceError(err));
    }, every).unref();
    this.statsTimer ??= setInterval(
      () => {
        for (const s of this.stores) void s.refreshSizes().catch(() => {});
      },
      Math.min(1000, every),
    ).unref();
  }

  unregister(store: RedisStore): void {
    this.stores.delete(store);
  }

  heartbeatIntervalMs(): number {
    return Math.max(100, Math.round(this.settings.recoveryTimeoutMs / 6));
  }

  /** The dead-letter queue of an output, for `estuary dlq` (no buffer, no driver). */
  deadLetterQueue(outputId: string): DeadLetterQueue {
    return new RedisDeadLetterQueue(this.client, new OutputKeys(this.settings.prefix, outputId), outputId);
  }

  /**
   * Stops at once as SIGKILL would, for tests of recovery: nothing sealed, leases left to
   * expire, chunks being written left leased (they expire and go to others).
   */
  async crash(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.pingTimer);
      clearInterval(this.heartbeatTimer);
      clearInterval(this.statsTimer);
      for (const s of this.created) s.crash();
      this.client.disconnect();
    })();
    return this.closed;
  }

  close(): Promise<void> {
    this.closed ??= (async () => {
      clearInterval(this.pingTimer);
      clearInterval(this.heartbeatTimer);
      clearInterval(this.statsTimer);
      // Buffers are stopped first (Estuary does); a store that was not stops its timers now.
      for (const s of this.created) s.crash();
      await quit(this.client);
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

/** `p`, or a rejection at `givenUp` (epoch ms) naming the wait. */
function inTime<T>(givenUp: number, p: Promise<T>): Promise<T> {
  const ms = givenUp - Date.now();
  return beforeDeadline(p, givenUp).catch((err: unknown) =>
    Promise.reject(
      err instanceof Error && err.message === 'deadline passed'
        ? new Error(`no answer within ${ms} ms`)
        : err,
    ),
  );
}

/** A command unanswered this long fails (as backpressure when staging): a hung Redis is unreachable. */
const COMMAND_TIMEOUT_MS = 2000;
/** A STAGE must start this long before our command timeout (clock offset error, the reply's way back). */
const STAGE_MARGIN_MS = 500;
/** Readiness: a PING (TIME, which also gives the clock offset) at most this often… */
const PING_EVERY_MS = 500;
/** …unanswered this long means not ready… */
const PING_DEADLINE_MS = 1250;
/** …checked this often. */
const PING_CHECK_MS = 250;

/** How long a total seen in a Redis reply stands in for a fresh read when admitting a batch. */
const KNOWN_FRESH_MS = 100;

/** How often a driver looks for chunks other replicas sealed or gave back. */
const POLL_MS = 250;

interface RedisLease extends Lease {
  readonly token: string;
}

/** One output's chunks in Redis; the sink driver above it decides what becomes of them. */
export class RedisStore implements ChunkStore {
  readonly deadLetter: DeadLetterQueue;
  readonly pollMs = POLL_MS;
  readonly renewMs: number;
  private readonly backend: RedisBackend;
  private readonly client: RedisClient;
  private readonly outputId: string;
  private readonly settings: BufferSettings;
  private readonly logger: Logger;
  private readonly keys: OutputKeys;
  private snapshot: StoreSizes = {
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
  private readyListener: () => void = () => {};
  private leases = 0;
  private stopping = false;
  private readonly warnMaintenance: () => void;
  private lastMaintenanceError = '';

  constructor(backend: RedisBackend, outputId: string, settings: BufferSettings, logger: Logger) {
    this.backend = backend;
    this.client = backend.client;
    this.outputId = outputId;
    this.settings = settings;
    this.logger = logger;
    this.keys = new OutputKeys(backend.settings.prefix, outputId);
    this.renewMs = Math.round(this.chunkLeaseMs / 3);
    this.deadLetter = new RedisDeadLetterQueue(this.client, this.keys, outputId, () => this.readyListener());
    this.warnMaintenance = rateLimited(30_000, (suppressed) =>
      this.logger.warn({ err: this.lastMaintenanceError, suppressed }, 'redis buffer maintenance failed'),
    );
  }

  /** This replica's lease on its open chunks. */
  private get replicaLeaseMs(): number {
    return Math.round(this.backend.settings.recoveryTimeoutMs / 2);
  }

  /** A chunk's lease: a dead writer's chunk is back within recovery_timeout. */
  private get chunkLeaseMs(): number {
    return Math.max(1000, Math.round(this.backend.settings.recoveryTimeoutMs / 3));
  }

  heldBytes(): number {
    return this.knownBytes;
  }

  async prepare(bytes: number, options: EmitOptions, stopping: () => boolean): Promise<void> {
    if (!this.backend.ready()) {
      if (!options.wait) throw new BackpressureError(`output ${this.outputId}: redis buffer unreachable`);
      // A sender that waits (forward) is paused until Redis is back.
      while (!this.backend.ready()) {
        if (stopping()) throw new BackpressureError(`output ${this.outputId} is shutting down`);
        await this.backend.connect(500);
      }
    }
    // The limit is global: other replicas fill the same buffer. The total this replica got
    // back from Redis (every stage and settle reply carries it) is trusted while it is at
    // most KNOWN_FRESH_MS old and leaves half the room; otherwise it is read again.
    if (
      Date.now() - this.knownAt > KNOWN_FRESH_MS ||
      this.knownBytes + bytes > this.settings.totalLimitSize / 2
    )
      await this.readBytes();
  }

  /**
   * Appends the batch to this replica's open chunk. The script calls of every output of a
   * batch, and of concurrent senders, leave in one auto-pipelined write.
   */
  async stage(batch: Batch): Promise<void> {
    const { chunkLimitSize, chunkLimitRecords } = this.settings;
    const maxRecords = Number.isFinite(chunkLimitRecords) ? chunkLimitRecords : Number.MAX_SAFE_INTEGER;
    // Given up at the command timeout from now, even when auto-pipelining holds the call
    // behind a batch that is itself waiting on a hung Redis (it would time out only 2 s after
    // it is sent); the deadline the script carries makes giving up safe.
    const givenUp = Date.now() + this.backend.commandTimeoutMs;
    const deadline = this.backend.stageDeadline();
    const calls = splitBatch(batch, chunkLimitSize, chunkLimitRecords).map((piece) =>
      inTime(
        givenUp,
        STAGE.run(this.client, this.keys.script, [
          this.backend.replica,
          randomUUID(),
          encodeFrames([piece]),
          piece.count,
          piece.bytes,
          chunkLimitSize,
          maxRecords,
          this.replicaLeaseMs,
          deadline,
        ]),
      ),
    );
    const results = await Promise.allSettled(calls);
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'rejected') failure ??= r.reason;
      else if (Number((r.value as (number | string)[])[0]) < 0)
        failure ??= new BackpressureError(
          `output ${this.outputId}: redis ran the staging after its deadline (too slow): not stored`,
        );
      else this.afterStage(r.value as (number | string)[]);
    }
    try {
      if (failure === undefined) await this.backend.waitReplicas(this.keys);
    } catch (err) {
      failure = err;
    }
    if (failure === undefined) return;
    if (failure instanceof BackpressureError) throw failure;
    throw new BackpressureError(
      `output ${this.outputId}: redis buffer unavailable (${errorMessage(failure)})`,
    );
  }

  async lease(ordered: boolean): Promise<RedisLease | { waitMs: number | undefined }> {
    const token = `${this.backend.replica}:${++this.leases}`;
    const reply = (await LEASE.run(this.client, this.keys.script, [
      token,
      this.backend.replica,
      this.chunkLeaseMs,
      ordered ? '1' : '0',
    ])) as (string | number)[];
    const id = String(reply[0]);
    if (id === '') {
      const wait = Number(reply[1]);
      return { waitMs: wait >= 0 ? wait : undefined };
    }
    const retries = Number(reply[1]);
    const since = String(reply[2]);
    // The lease is held: nothing else changes the chunk until it is settled.
    const frames = await this.client.lrangeBuffer(this.keys.chunk(id), 0, -1);
    const lease = { retries, failingSince: since === '' ? undefined : Number(since), token };
    try {
      return { ...lease, chunk: makeChunk(id, decodeFrames(frames), retries) };
    } catch (err) {
      return {
        ...lease,
        chunk: makeChunk(id, [], retries),
        unreadable: `unreadable chunk: ${errorMessage(err)}`,
      };
    }
  }

  async renew(lease: Lease): Promise<boolean> {
    const held = await RENEW.run(this.client, this.keys.script, [
      lease.chunk.id,
      (lease as RedisLease).token,
      this.chunkLeaseMs,
    ]);
    if (Number(held) === 1) return true;
    this.logger.warn(
      { chunk_id: lease.chunk.id },
      'lease on a chunk being written was lost: write abandoned',
    );
    return false;
  }

  async settle(lease: Lease, s: Settlement): Promise<SettleReport> {
    const chunkId = lease.chunk.id;
    const attempts = lease.retries + 1;
    const groups: { id: string; reason: string; frames: Buffer; count: number; bytes: number }[] = [];
    for (const { reason, entries } of s.dead) {
      const { batches, count, bytes } = await encodeEntries(entries);
      groups.push({ id: randomUUID(), reason, frames: encodeFrames(batches), count, bytes });
    }
    let rewrite: [string, Buffer | string, number, number] = ['0', '', 0, 0];
    if (s.kind === 'retry' && s.keep) {
      const { batches, count, bytes } = await encodeEntries(s.keep);
      rewrite = ['1', encodeFrames(batches), count, bytes];
    }
    const retry = s.kind === 'retry' ? s : undefined;
    const deadId = randomUUID();
    const reply = (await SETTLE.run(this.client, this.keys.script, [
      chunkId,
      s.kind,
      attempts,
      this.settings.deadLetter.enabled ? '1' : '0',
      this.settings.deadLetter.maxSize,
      retry ? Math.max(0, retry.at - Date.now()) : 0,
      retry?.failingSince ?? Date.now(),
      deadId,
      s.kind === 'dead' ? s.reason : '',
      ...rewrite,
      (lease as RedisLease).token,
      retry?.counted ? '1' : '0',
      retry?.avoid ? this.backend.replica : '',
      POLL_MS * 4,
      ...groups.flatMap((g) => [g.id, g.reason, g.frames, g.count, g.bytes]),
    ])) as number[];
    const [total, mine, droppedFull, droppedDisabled, deadRecords, answered] = reply.map(
      Number,
    ) as number[] as [number, number, number, number, number, number];
    this.know(total);
    const enabled = this.settings.deadLetter.enabled;
    const deadLettered =
      enabled && answered ? groups.map((g) => ({ id: g.id, records: g.count, reason: g.reason })) : [];
    if (s.kind === 'dead' && deadRecords > 0)
      deadLettered.push({ id: deadId, records: deadRecords, reason: s.reason });
    if (retry && mine && retry.at <= Date.now()) this.readyListener();
    return { deadLettered, droppedFull, droppedDisabled, owned: mine === 1 };
  }

  async deadLetterNow(entries: readonly TaggedEntry[], reason: string): Promise<SettleReport> {
    const report: SettleReport = { deadLettered: [], droppedFull: 0, droppedDisabled: 0, owned: false };
    const { batches, count, bytes } = await encodeEntries(entries);
    if (!this.settings.deadLetter.enabled) {
      report.droppedDisabled = count;
      return report;
    }
    const id = randomUUID();
    report.droppedFull = Number(
      await DEAD_ADD.run(this.client, this.keys.script, [
        this.settings.deadLetter.maxSize,
        id,
        reason,
        encodeFrames(batches),
        count,
        bytes,
      ]),
    );
    report.deadLettered.push({ id, records: count, reason });
    return report;
  }

  async dropOldest(bytes: number): Promise<{ records: number; ids: string[] }> {
    const reply = (await DROP_OLDEST.run(this.client, this.keys.script, [
      bytes,
      this.settings.totalLimitSize,
    ]).catch((err: unknown) => {
      throw new BackpressureError(`output ${this.outputId}: redis buffer unavailable (${errorMessage(err)})`);
    })) as (number | string)[];
    const [total, records, ...ids] = reply;
    this.know(Number(total));
    return { records: Number(records), ids: ids.map(String) };
  }

  async sealOpen(): Promise<void> {
    this.stopping = true;
    for (const t of this.sealTimers.values()) clearTimeout(t);
    this.sealTimers.clear();
    await this.sealNow();
  }

  onReady(listener: () => void): void {
    this.readyListener = listener;
  }

  sizes(): StoreSizes {
    return this.snapshot;
  }

  async refreshSizes(): Promise<void> {
    const r = ((await STATS.run(this.client, this.keys.script, [])) as number[]).map(Number);
    this.snapshot = {
      stageLength: r[1]!,
      stageBytes: r[2]!,
      queueLength: r[3]!,
      queueBytes: r[4]!,
      deadLetterChunks: r[5]!,
      deadLetterRecords: r[6]!,
      nextRetryAt: r[7]! >= 0 ? Date.now() + r[7]! : undefined,
    };
    this.know(r[0]!);
  }

  async start(): Promise<void> {
    if (!(await this.backend.startupConnect())) {
      this.logger.warn('redis not reachable yet: refusing data until it is (the buffer connects by itself)');
    }
    this.backend.register(this);
    void this.heartbeat().catch((err) => this.logMaintenanceError(err));
  }

  /** Nothing is lost: what this replica staged is sealed, and any replica delivers it. */
  async stop(): Promise<number> {
    this.stopping = true;
    this.backend.unregister(this);
    // The last heartbeat drops this replica's lease and seals dead replicas' open chunks.
    await beforeDeadline(
      HEARTBEAT.run(this.client, this.keys.script, [this.backend.replica, 0, Number.MAX_SAFE_INTEGER, '1']),
      Date.now() + 1000,
    ).catch(() => {});
    return 0;
  }

  /** See RedisBackend.crash. */
  crash(): void {
    this.stopping = true;
    this.backend.unregister(this);
    for (const t of this.sealTimers.values()) clearTimeout(t);
    this.sealTimers.clear();
  }

  /** Lease of this replica, recovery of dead replicas' open chunks, adoption of strays. */
  async heartbeat(): Promise<void> {
    const { recoveryTimeoutMs } = this.backend.settings;
    const sealed = (await HEARTBEAT.run(this.client, this.keys.script, [
      this.backend.replica,
      this.replicaLeaseMs,
      this.settings.flushIntervalMs + recoveryTimeoutMs,
      '0',
    ])) as string[];
    if (sealed.length > 0) {
      this.logger.info(
        { chunks: sealed.length },
        'sealed open chunks of a replica that stopped heartbeating',
      );
      this.sealed(sealed);
    }
    await this.adopt();
  }

  /**
   * Sealed chunks without a place in the queue (left by an older Estuary, whose queue was
   * BullMQ's, during a rolling update) become ready. One O(1) check when there are none.
   */
  private async adopt(): Promise<void> {
    let offset = 0;
    let found = 0;
    while (offset >= 0) {
      const [next, ...ids] = (await ADOPT.run(this.client, this.keys.script, [offset, 500])) as [
        number,
        ...string[],
      ];
      found += ids.length;
      offset = Number(next);
    }
    if (found > 0) {
      this.logger.info({ chunks: found }, 'sealed chunks found without a place in the queue: made ready');
      this.readyListener();
    }
  }

  logMaintenanceError(err: unknown): void {
    this.lastMaintenanceError = errorMessage(err);
    this.warnMaintenance();
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

  /** Chunks just sealed: forget their timers, wake the driver. */
  private sealed(ids: string[]): void {
    for (const id of ids) {
      clearTimeout(this.sealTimers.get(id));
      this.sealTimers.delete(id);
    }
    this.readyListener();
  }

  /** From a timer: a failure is logged and tried again (another replica seals the chunk if this one dies). */
  private sealLater(chunkId: string): void {
    this.sealTimers.delete(chunkId);
    this.sealNow(chunkId).catch((err) => {
      this.logMaintenanceError(err);
      if (this.stopping) return;
      const timer = setTimeout(() => this.sealLater(chunkId), 500);
      timer.unref();
      this.sealTimers.set(chunkId, timer);
    });
  }

  /** Seals this replica's open chunk (`chunkId`, or whichever is open). */
  private async sealNow(chunkId?: string): Promise<void> {
    const ids = (await SEAL.run(this.client, this.keys.script, [
      this.backend.replica,
      chunkId ?? '',
    ])) as string[];
    this.sealed(ids);
  }

  private know(total: number): void {
    this.knownBytes = total;
    this.knownAt = Date.now();
  }

  private async readBytes(): Promise<void> {
    try {
      const bytes = await inTime(
        Date.now() + this.backend.commandTimeoutMs,
        this.client.hget(this.keys.stats, 'bytes'),
      );
      this.know(Number(bytes ?? 0));
    } catch (err) {
      throw new BackpressureError(`output ${this.outputId}: redis buffer unavailable (${errorMessage(err)})`);
    }
  }
}
