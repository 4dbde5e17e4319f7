import type { BufferSettings } from '../config/schema.ts';
import type { Batch } from '../core/batch.ts';
import type { TaggedEntry } from '../core/entry.ts';
import type { EmitOptions } from '../inputs/input.ts';
import type { Logger } from '../logger.ts';
import type { Metrics, OutputStatus } from '../metrics/registry.ts';
import type { Output } from '../outputs/output.ts';

/**
 * One buffer per output. The contract every backend keeps (test/buffer/contract.ts checks it):
 *
 *   stage(batch) ──► open chunk ──(size | records | flush_interval)──► sealed queue
 *                                                                        │
 *            ┌──── retry after backoff ◄── RetryableError / partial ◄────┤ flush worker × flush_thread_count
 *            ▼                                                           │   Output.write(chunk)
 *      sealed queue            dead-letter ◄── RejectError / rejected / retries exhausted
 *
 * `stage` resolves only when the batch is as durable as the backend makes it; that is when
 * inputs acknowledge. Nothing is removed before the output has succeeded or given up.
 */
export interface OutputBuffer extends OutputStatus {
  readonly settings: BufferSettings;
  /** Waits (block + wait) or throws BackpressureError when the batch does not fit total_limit_size. */
  reserve(bytes: number, options: EmitOptions): Promise<void>;
  stage(batch: Batch): Promise<void>;
  /** Starts the flush workers. */
  start(): Promise<void>;
  /** Seals open chunks and, with flush_at_shutdown, flushes until `deadline` (epoch ms). Safe twice. */
  stop(deadline: number): Promise<void>;
  readonly deadLetter: DeadLetterQueue;
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
  create(output: Output, settings: BufferSettings, deps: BufferDeps): OutputBuffer;
  /** Reachable and writable (for /readyz). */
  ready(): boolean;
  close(): Promise<void>;
}
