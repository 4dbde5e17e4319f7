import type { Batch } from '../core/batch.ts';
import type { TaggedEntry } from '../core/entry.ts';

/** What the buffer hands an output: a sealed chunk, possibly holding several tags. */
export interface Chunk {
  readonly id: string;
  /** 0 on the first try, then the number of earlier failed tries. */
  readonly attempt: number;
  readonly count: number;
  readonly bytes: number;
  /** The encoded entries, one batch per tag run; outputs that pass bytes through read these. */
  readonly batches: readonly Batch[];
  /** Decoded on first call, then cached. */
  entries(): readonly TaggedEntry[];
}

export interface Rejection {
  entry: TaggedEntry;
  /** The sink's own words, kept with the dead-letter entry. */
  reason: string;
}

/**
 * An output says what happened and nothing more: the buffer retries, backs off and
 * dead-letters. Returning nothing (or an empty result) means every entry is delivered.
 */
export interface WriteResult {
  /** Entries to try again later (e.g. Elasticsearch items answered 429). */
  retry?: readonly TaggedEntry[];
  /** Entries that will never pass (e.g. mapping errors); they go to the dead-letter queue. */
  reject?: readonly Rejection[];
  /** The sink asked to wait this long before the entries in `retry` are sent again. */
  retryAfterMs?: number;
  /**
   * Why the entries in `retry` were not taken (the sink's error codes): the chunk's last error,
   * and so the dead-letter reason if the retry policy gives up on them.
   */
  retryReason?: string;
}

export interface WriteOptions {
  /**
   * Aborted at the write deadline (`buffer.write_timeout`) or at shutdown. Pass it to every
   * request; the driver stops waiting at the deadline either way.
   */
  signal: AbortSignal;
}

export interface Output {
  readonly id: string;
  readonly type: string;
  /** Opens clients and reads files; throw for configuration that cannot work (a startup error). */
  start?(): Promise<void>;
  /**
   * Throws RetryableError (network, timeout, 429, 5xx), RejectError (this chunk will never
   * pass) or HaltError (the sink refuses everything: 401, 403, missing index). Anything else
   * counts as retryable. Never sleeps, never retries, honours `options.signal`.
   */
  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined>;
  /** Releases clients and files. Safe without start, safe twice. */
  stop?(): Promise<void>;
  /** SIGHUP: reopen files (log rotation). */
  reopen?(): Promise<void>;
}
