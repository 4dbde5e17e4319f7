import type { BufferSettings } from '../config/schema.ts';
import type { Batch } from '../core/batch.ts';
import type { TaggedEntry } from '../core/entry.ts';
import type { EmitOptions } from '../inputs/input.ts';
import type { Logger } from '../logger.ts';
import type { Metrics, OutputStatus } from '../metrics/registry.ts';
import type { Output } from '../outputs/output.ts';

/**
 * One buffer per output, as the pipeline and the admin API see it: a chunk store
 * (./store.ts) under one sink driver (src/delivery/driver.ts). test/buffer/contract.ts
 * checks it over every store.
 *
 * `stage` resolves only when the batch is as durable as the store makes it; that is when
 * inputs acknowledge. Nothing is removed before the output has succeeded or given up.
 */
export interface OutputBuffer extends OutputStatus {
  readonly settings: BufferSettings;
  /**
   * Takes room for `bytes` under total_limit_size: waits its turn (block + wait), or throws
   * BackpressureError. The permit is used by `stage` or given back with `release`.
   */
  reserve(bytes: number, options: EmitOptions): Promise<Permit>;
  stage(batch: Batch, permit: Permit): Promise<void>;
  /** Starts flushing. */
  start(): Promise<void>;
  /** Seals open chunks and, with flush_at_shutdown, flushes until `deadline` (epoch ms). Safe twice. */
  stop(deadline: number): Promise<void>;
  readonly deadLetter: DeadLetterQueue;
  /**
   * Entries refused before they were buffered (a filter's emit_invalid_record_to_error), put
   * straight into the dead-letter queue with `reason`; resolves once they are stored there.
   */
  deadLetterNow(entries: readonly TaggedEntry[], reason: string): Promise<void>;
}

/** Room taken in a buffer; released once, by `stage` or by the caller. */
export interface Permit {
  readonly bytes: number;
  release(): void;
}

export interface DeadLetterInfo {
  id: string;
  outputId: string;
  reason: string;
  /** Tries made before giving up. */
  attempts: number;
  /** When it was dead-lettered, epoch ms. */
  time: number;
  count: number;
  bytes: number;
}

export interface DeadLetterQueue {
  list(): Promise<DeadLetterInfo[]>;
  show(id: string): Promise<{ info: DeadLetterInfo; entries: TaggedEntry[] } | undefined>;
  /** Back into the output's queue as a fresh chunk. */
  replay(id: string): Promise<boolean>;
  /** One chunk, or all when no id; returns how many were removed. */
  purge(id?: string): Promise<number>;
}

export interface BufferDeps {
  logger: Logger;
  metrics: Metrics;
}

export interface BufferBackend {
  readonly type: string;
  /**
   * Buffer sizes are those of every process using the same store (Redis), not this one's:
   * worker processes' metrics take the largest, not the sum.
   */
  readonly shared: boolean;
  /** The output's buffer: its chunk store under a sink driver. */
  create(output: Output, settings: BufferSettings, deps: BufferDeps): OutputBuffer;
  /** Reachable and writable (for /readyz). */
  ready(): boolean;
  close(): Promise<void>;
}
