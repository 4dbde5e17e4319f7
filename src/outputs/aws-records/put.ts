import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, HaltError, RejectError, RetryableError, type WriteError } from '../../core/errors.ts';
import { describeRetries, splitRequests } from '../../delivery/request.ts';
import type { Rejection, WriteResult } from '../output.ts';
import { entriesOf } from './entries.ts';
import type { Unit } from './pack.ts';

/**
 * Units → batch calls (PutRecordBatch, PutRecords) within the API's limits, sent one after the
 * other, and the answers folded into one WriteResult:
 *
 *   a record answered with an ErrorCode   → its entries retried (an aggregate: all it holds),
 *                                           the records stored beside it are done
 *   a call that fails: retryable          → its entries and the later calls' retried
 *                      reject             → its entries dead-lettered with the reason
 *                      halt               → thrown: the driver keeps the whole chunk
 *
 * Nothing is retried here: the buffer retries what comes back, after its backoff. The request
 * layer (delivery/request.ts) answers per item with one entry each; a unit here carries many.
 */

/** What the sink said about one record it did not store. */
export interface RecordFailure {
  code: string;
  message: string;
}

export interface CallPlan {
  /** Records one call may hold. */
  maxRecords: number;
  /** Bytes one call may hold, as `bytes` counts them. */
  maxBytes: number;
  bytes(unit: Unit): number;
  /** One call; one answer per unit, in order (undefined: stored). Throws what the SDK throws. */
  send(units: readonly Unit[], signal: AbortSignal): Promise<readonly (RecordFailure | undefined)[]>;
  /** A failed call as the driver acts on it. */
  classify(err: unknown): WriteError;
  /** A record the sink did not store, for the metrics. */
  failed(failure: RecordFailure): void;
}

export async function putInCalls(
  units: readonly Unit[],
  plan: CallPlan,
  signal: AbortSignal,
  rejected: readonly Rejection[],
): Promise<WriteResult | undefined> {
  const retry: TaggedEntry[] = [];
  const reject = [...rejected];
  let stored = 0;
  let perRecord = 0;
  let stop: RetryableError | undefined;
  /** Per error code and message: how many records. */
  const codes = new Map<string, number>();
  const entries = (call: readonly Unit[]) => entriesOf(call.flatMap((u) => u.entries));
  for (const call of splitRequests(units, {
    maxBytes: plan.maxBytes,
    maxCount: plan.maxRecords,
    bytes: plan.bytes,
  })) {
    if (!stop && signal.aborted)
      stop = new RetryableError(`write aborted before this call was sent: ${errorMessage(signal.reason)}`);
    if (stop) {
      // The call before failed as a whole: this one would too.
      retry.push(...entries(call));
      continue;
    }
    let answers: readonly (RecordFailure | undefined)[];
    try {
      answers = await plan.send(call, signal);
    } catch (err) {
      const error = plan.classify(err);
      if (error instanceof HaltError) throw error;
      if (error instanceof RejectError) {
        for (const entry of entries(call)) reject.push({ entry, reason: error.message });
        continue;
      }
      stop = error;
      retry.push(...entries(call));
      continue;
    }
    if (answers.length !== call.length) {
      stop = new RetryableError(`the sink answered ${answers.length} records for ${call.length} sent`);
      retry.push(...entries(call));
      continue;
    }
    for (const [i, answer] of answers.entries()) {
      const unit = call[i]!;
      if (answer === undefined) {
        stored += 1;
        continue;
      }
      perRecord += 1;
      plan.failed(answer);
      const why = answer.message ? `${answer.code} (${answer.message})` : answer.code;
      codes.set(why, (codes.get(why) ?? 0) + 1);
      retry.push(...entriesOf(unit.entries));
    }
  }
  if (stop && stored === 0 && perRecord === 0 && reject.length === 0) {
    // Nothing went through: the error itself, so its Retry-After is honoured.
    throw stop;
  }
  if (retry.length === 0 && reject.length === 0) return undefined;
  const retryReason = describeRetries(codes, stop ? [stop] : []);
  return {
    retry,
    reject,
    ...(stop?.retryAfterMs !== undefined && { retryAfterMs: stop.retryAfterMs }),
    ...(retryReason && { retryReason }),
  };
}
