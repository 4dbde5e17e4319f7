import type { TaggedEntry } from '../core/entry.ts';
import { errorMessage, RejectError, RetryableError } from '../core/errors.ts';
import type { Logger } from '../logger.ts';
import type { BufferStats, Metrics } from '../metrics/registry.ts';
import type { Chunk, Output, Rejection } from '../outputs/output.ts';

/** The counters behind the fluentd_output_status_* gauges; both backends keep them the same way. */
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

export type Outcome =
  | { kind: 'done'; rejected: readonly Rejection[] }
  /** Some entries must be tried again; the rest are delivered or rejected. */
  | { kind: 'partial'; retry: readonly TaggedEntry[]; rejected: readonly Rejection[] }
  | { kind: 'retryable'; error: Error }
  | { kind: 'fatal'; error: Error };

export interface DeliverContext {
  output: Output;
  counters: BufferCounters;
  metrics: Metrics;
  logger: Logger;
  slowFlushThresholdMs: number;
}

/**
 * One write of one chunk, classified. Metrics and log lines for a flush live here, once,
 * for every backend and every output.
 */
export async function deliver(ctx: DeliverContext, chunk: Chunk): Promise<Outcome> {
  const { output, counters, metrics, logger } = ctx;
  const labels = { plugin_id: output.id, type: output.type };
  const started = performance.now();
  counters.writeCount += 1;
  let outcome: Outcome;
  try {
    const result = await output.write(chunk);
    const rejected = result?.reject ?? [];
    const retry = result?.retry ?? [];
    outcome = retry.length > 0 ? { kind: 'partial', retry, rejected } : { kind: 'done', rejected };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    // Anything unclassified is treated as transient: a bug in an output must not drop data.
    outcome = err instanceof RejectError ? { kind: 'fatal', error } : { kind: 'retryable', error };
  }
  const elapsed = performance.now() - started;
  counters.flushTimeCount += Math.round(elapsed);
  metrics.flushDuration.observe({ ...labels, result: outcome.kind }, elapsed / 1000);
  if (elapsed > ctx.slowFlushThresholdMs) {
    counters.slowFlushCount += 1;
    logger.warn({ chunk_id: chunk.id, elapsed_ms: Math.round(elapsed), records: chunk.count }, 'slow flush');
  }
  const rejectedCount = outcome.kind === 'done' || outcome.kind === 'partial' ? outcome.rejected.length : 0;
  if (outcome.kind === 'done') {
    metrics.recordsDelivered.inc(labels, chunk.count - rejectedCount);
  } else if (outcome.kind === 'partial') {
    metrics.recordsDelivered.inc(labels, chunk.count - rejectedCount - outcome.retry.length);
    counters.rollbackCount += 1;
  } else {
    counters.numErrors += 1;
    counters.rollbackCount += outcome.kind === 'retryable' ? 1 : 0;
  }
  if (rejectedCount > 0) {
    counters.numErrors += 1;
    const first = (outcome as { rejected: readonly Rejection[] }).rejected[0]!;
    logger.warn(
      { chunk_id: chunk.id, rejected: rejectedCount, first_reason: first.reason },
      'sink rejected records',
    );
  }
  return outcome;
}

export function reasonOf(error: Error): string {
  if (error instanceof RetryableError || error instanceof RejectError) return error.message;
  return `${error.name}: ${errorMessage(error)}`;
}
