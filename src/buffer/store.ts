import type { Batch } from '../core/batch.ts';
import type { TaggedEntry } from '../core/entry.ts';
import type { EmitOptions } from '../inputs/input.ts';
import type { BufferStats } from '../metrics/registry.ts';
import type { Chunk } from '../outputs/output.ts';
import type { DeadLetterQueue } from './buffer.ts';

/**
 * Storage, and nothing about delivery: a store keeps one output's chunks and answers the
 * sink driver (src/delivery/driver.ts), which decides everything else. A new store (say,
 * local disk) implements this and passes test/buffer/contract.ts unchanged.
 *
 *   stage ─► open chunk ─(size | records | flush_interval)─► sealed, in seal order
 *                                                               │ lease (oldest first)
 *                         settle: done · retry at a time · entries rewritten · dead-letter
 */
export interface ChunkStore {
  /** Bytes held (open and sealed chunks), as this process last saw them. */
  heldBytes(): number;
  /**
   * Before admitting `bytes`: throws BackpressureError when the store cannot take data now,
   * or waits for it when `options.wait`; brings heldBytes() up to date where it may be stale.
   */
  prepare(bytes: number, options: EmitOptions, stopping: () => boolean): Promise<void>;
  /** Appends the batch to the open chunk; resolves once it is as durable as the store makes it. */
  stage(batch: Batch): Promise<void>;
  /**
   * The oldest chunk ready now. `ordered`: none when an older chunk waits on its retry time.
   * Otherwise, how long until one may be (undefined: nothing waits on a time).
   */
  lease(ordered: boolean): Promise<Lease | { waitMs: number | undefined }>;
  /**
   * Keeps a lease while its write runs (a shared store hands an expired one to another
   * process). False: the lease was lost and another process may be writing the chunk.
   */
  renew(lease: Lease): Promise<boolean>;
  settle(lease: Lease, settlement: Settlement): Promise<SettleReport>;
  /**
   * Entries refused before they were buffered (a filter's emit_invalid_record_to_error) put
   * straight into the dead-letter queue, one dead chunk per tag, with `reason`.
   */
  deadLetterNow(entries: readonly TaggedEntry[], reason: string): Promise<SettleReport>;
  /**
   * overflow_action drop_oldest_chunk: drops the oldest sealed chunks not being written until
   * `bytes` more fit under total_limit_size (a target, not an amount: concurrent senders do
   * not each drop their own share).
   */
  dropOldest(bytes: number): Promise<{ records: number; ids: string[] }>;
  /**
   * At shutdown: seals what is open. A store whose data dies with the process also makes
   * chunks waiting on a backoff ready, for one last try. Safe twice.
   */
  sealOpen(): Promise<void>;
  /** The driver's wake-up: a chunk was sealed, or came back for a retry, in this process. */
  onReady(listener: () => void): void;
  readonly deadLetter: DeadLetterQueue;
  /** Sizes of the store, for the fluentd_output_status_* gauges. */
  sizes(): StoreSizes;
  refreshSizes?(): Promise<void>;
  /** How often to look for chunks another process sealed or gave back (undefined: never). */
  readonly pollMs: number | undefined;
  /** How often a lease is renewed while its write runs (undefined: leases do not expire). */
  readonly renewMs: number | undefined;
  start(): Promise<void>;
  /** After the driver stopped leasing. Resolves with the records this process loses by stopping. */
  stop(): Promise<number>;
}

export type StoreSizes = Pick<
  BufferStats,
  'stageLength' | 'stageBytes' | 'queueLength' | 'queueBytes' | 'deadLetterChunks' | 'deadLetterRecords'
> & { /** Epoch ms of the next retry, if one waits. */ nextRetryAt: number | undefined };

export interface Lease {
  readonly chunk: Chunk;
  /** Failed tries counted against the retry policy so far. */
  readonly retries: number;
  /** Epoch ms of the first counted failure, if any. */
  readonly failingSince: number | undefined;
  /** The stored bytes cannot be read: they go to the dead-letter queue as they are, unwritten. */
  readonly unreadable?: string;
}

/** Entries the sink refused for one reason: one dead-letter chunk. */
export interface DeadGroup {
  reason: string;
  entries: readonly TaggedEntry[];
}

export type Settlement =
  | { kind: 'done'; dead: readonly DeadGroup[] }
  | {
      kind: 'retry';
      dead: readonly DeadGroup[];
      /** Epoch ms when the chunk may be leased again. */
      at: number;
      /** The entries left to write, when not all of them (the chunk is rewritten). */
      keep?: readonly TaggedEntry[];
      /** Counts against the retry policy (not while the output is halted, nor for a shutdown hand-back). */
      counted: boolean;
      /** Epoch ms the failures began, kept from the first counted one. */
      failingSince: number;
      /** This process's write timed out: leave the chunk to other processes for a while. */
      avoid: boolean;
    }
  /** Every entry that is left goes to the dead-letter queue with this reason. */
  | { kind: 'dead'; dead: readonly DeadGroup[]; reason: string };

export interface SettleReport {
  /** Dead-letter chunks written: their ids, records and reasons (for the log line). */
  deadLettered: { id: string; records: number; reason: string }[];
  /** Records dropped because the dead-letter queue was full, or is disabled. */
  droppedFull: number;
  droppedDisabled: number;
  /** The chunk was still this process's to settle (not already taken over, dropped or purged). */
  owned: boolean;
}
