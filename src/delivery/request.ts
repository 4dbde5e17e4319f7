import type { TaggedEntry } from '../core/entry.ts';
import { errorMessage, HaltError, RejectError, RetryableError } from '../core/errors.ts';
import type { Rejection, WriteResult } from '../outputs/output.ts';

/**
 * The request layer under the network outputs: one chunk's items (bulk actions, log lines)
 * cut into requests, sent one after the other, and the answers folded into one WriteResult.
 *
 *   items ─► splitRequests (groups, count and byte limits) ─► send ─┬─ ok / per-item answers
 *                                                                  ├─ TooLargeError: halves, again
 *                                                                  ├─ RejectError: this request's items
 *                                                                  ├─ RetryableError: stop the group
 *                                                                  └─ HaltError: stop the write
 *
 * The output only encodes and sends; what an answer means for the buffer is decided here,
 * once, so every network output retries, rejects and halts alike.
 */

/** The sink refused a request for its size (HTTP 413): it is halved, a lone item rejected. */
export class TooLargeError extends Error {
  override readonly name = 'TooLargeError';
}

/** What the sink said about one item of a request it took (e.g. an Elasticsearch bulk item). */
export type ItemAnswer =
  | { kind: 'ok' }
  | { kind: 'retry'; reason: string }
  | { kind: 'reject'; reason: string };

export interface RequestLimits<I> {
  /** Bytes one request may hold; an item larger than this goes alone, and the sink decides. */
  maxBytes: number;
  /** Items one request may hold. */
  maxCount?: number;
  /**
   * Bytes an item adds to a request; `previous` is the item before it in that request (Loki
   * counts a stream's header once, for the first line of the stream).
   */
  bytes(item: I, previous: I | undefined): number;
  /**
   * Items of different groups never share a request, and a request that fails retryably
   * stops only its group (Loki: one tenant's rate limit is not another's). Default: one group.
   */
  group?(item: I): unknown;
}

export interface RequestPlan<I> extends RequestLimits<I> {
  entry(item: I): TaggedEntry;
  /**
   * Sends one request, passing `signal` on. Resolves with one answer per item, or with nothing
   * when the sink took them all. Throws TooLargeError, RetryableError, RejectError (these
   * items will never pass) or HaltError; anything else counts as retryable.
   */
  send(items: readonly I[], signal: AbortSignal): Promise<readonly ItemAnswer[] | undefined>;
  /** The item in the reason a lone item too large is rejected with: `document`, `entry`. */
  noun: string;
  /** A request answered 413 is about to be sent as two halves. */
  onSplit?(items: readonly I[]): void;
  /**
   * Groups sent at the same time, each one's requests one after the other (CloudWatch Logs: a
   * call per log stream, the streams of a chunk at once). Default 1: one request at a time.
   */
  concurrency?: number;
}

/**
 * Cuts items into requests of at most `maxBytes` and `maxCount`, per group, in order: the
 * groups in the order they first appear, each group's items in theirs.
 */
export function splitRequests<I>(items: readonly I[], limits: RequestLimits<I>): I[][] {
  const maxCount = limits.maxCount ?? Number.POSITIVE_INFINITY;
  const groups = new Map<unknown, { done: I[][]; current: I[]; bytes: number }>();
  for (const item of items) {
    const key = limits.group?.(item);
    let g = groups.get(key);
    if (!g) {
      g = { done: [], current: [], bytes: 0 };
      groups.set(key, g);
    }
    let cost = limits.bytes(item, g.current.at(-1));
    if (g.current.length > 0 && (g.bytes + cost > limits.maxBytes || g.current.length >= maxCount)) {
      g.done.push(g.current);
      g.current = [];
      g.bytes = 0;
      cost = limits.bytes(item, undefined);
    }
    g.current.push(item);
    g.bytes += cost;
  }
  const requests: I[][] = [];
  for (const g of groups.values()) {
    for (const request of g.done) requests.push(request);
    if (g.current.length > 0) requests.push(g.current);
  }
  return requests;
}

/**
 * Sends a chunk's items in requests and says what became of them: undefined when all went
 * through; a WriteResult with the items to retry and those rejected; or, when nothing went
 * through and one kind of error stopped everything, that error thrown (so the driver honours
 * its Retry-After). A HaltError of any request is thrown at once: the driver keeps the whole
 * chunk, and a re-send of what did go through is harmless (Elasticsearch `_id`s, Loki's
 * duplicate check). `rejected` are items the output refused before sending (encoding).
 */
export async function sendInRequests<I>(
  items: readonly I[],
  plan: RequestPlan<I>,
  signal: AbortSignal,
  rejected: readonly Rejection[] = [],
): Promise<WriteResult | undefined> {
  // A halt in one group aborts the requests other groups have in flight: the driver takes the
  // chunk back at once, and nothing of it should still be going out after that.
  const onHalt = new AbortController();
  const sending = AbortSignal.any([signal, onHalt.signal]);
  const tally = new Tally(plan, sending, rejected);
  const groups = new Map<unknown, I[][]>();
  for (const request of splitRequests(items, plan)) {
    const group = plan.group?.(request[0]!);
    const requests = groups.get(group);
    if (requests) requests.push(request);
    else groups.set(group, [request]);
  }
  const queue = [...groups.values()];
  let aborted: RetryableError | undefined;
  let halted = false;
  const worker = async () => {
    for (let requests = queue.shift(); requests && !halted; requests = queue.shift()) {
      let stop: RetryableError | undefined;
      for (const request of requests) {
        if (halted) return;
        if (sending.aborted) aborted ??= abortedBeforeSending(sending);
        stop ??= aborted;
        if (stop) {
          // The group's earlier request failed as a whole: the next one would too.
          tally.stop(request, stop);
          continue;
        }
        try {
          stop = await tally.send(request);
        } catch (err) {
          // A halt stops every group: the driver keeps the whole chunk.
          halted = true;
          onHalt.abort(err);
          throw err;
        }
      }
    }
  };
  const workers = Math.max(1, Math.min(plan.concurrency ?? 1, queue.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return tally.result();
}

/** What happened to a chunk's items, request by request. */
class Tally<I> {
  private delivered = 0;
  /** Items the sink answered "retry" one by one. */
  private readonly retry: TaggedEntry[] = [];
  /** Their reasons, counted. */
  private readonly retryReasons = new Map<string, number>();
  private readonly reject: Rejection[];
  /** Items of requests that failed as a whole (or were not sent after one did). */
  private readonly stopped: TaggedEntry[] = [];
  private readonly errors = new Set<RetryableError>();
  private readonly plan: RequestPlan<I>;
  private readonly signal: AbortSignal;

  constructor(plan: RequestPlan<I>, signal: AbortSignal, rejected: readonly Rejection[]) {
    this.plan = plan;
    this.signal = signal;
    this.reject = [...rejected];
  }

  stop(items: readonly I[], error: RetryableError): void {
    for (const item of items) this.stopped.push(this.plan.entry(item));
    this.errors.add(error);
  }

  /** One request; a 413 halves it, the halves sent in turn. Returns the error that stopped it. */
  async send(items: readonly I[]): Promise<RetryableError | undefined> {
    let answers: readonly ItemAnswer[] | undefined;
    try {
      answers = await this.plan.send(items, this.signal);
    } catch (err) {
      if (err instanceof HaltError) throw err;
      if (err instanceof RejectError) {
        for (const item of items) this.reject.push({ entry: this.plan.entry(item), reason: err.message });
        return undefined;
      }
      if (err instanceof TooLargeError) return this.split(items, err);
      const error =
        err instanceof RetryableError ? err : new RetryableError(errorMessage(err), { cause: err });
      this.stop(items, error);
      return error;
    }
    if (answers === undefined) {
      this.delivered += items.length;
      return undefined;
    }
    if (answers.length !== items.length) {
      const error = new RetryableError(`the sink answered ${answers.length} items for ${items.length} sent`);
      this.stop(items, error);
      return error;
    }
    for (const [i, answer] of answers.entries()) {
      // An item's entry is only looked up (decoded, for outputs that write from bytes) when
      // it comes back.
      if (answer.kind === 'ok') this.delivered += 1;
      else if (answer.kind === 'retry') {
        this.retry.push(this.plan.entry(items[i]!));
        this.retryReasons.set(answer.reason, (this.retryReasons.get(answer.reason) ?? 0) + 1);
      } else this.reject.push({ entry: this.plan.entry(items[i]!), reason: answer.reason });
    }
    return undefined;
  }

  private async split(items: readonly I[], err: TooLargeError): Promise<RetryableError | undefined> {
    if (items.length === 1) {
      // No retry makes one item smaller: it waits in the dead-letter queue for a larger limit
      // on the sink (or a proxy) and a replay.
      const bytes = this.plan.bytes(items[0]!, undefined);
      this.reject.push({
        entry: this.plan.entry(items[0]!),
        reason: `${err.message}: one ${this.plan.noun} of ${bytes} bytes is over the limit`,
      });
      return undefined;
    }
    this.plan.onSplit?.(items);
    const half = Math.ceil(items.length / 2);
    const error = await this.send(items.slice(0, half));
    if (error) {
      this.stop(items.slice(half), error);
      return error;
    }
    return this.send(items.slice(half));
  }

  result(): WriteResult | undefined {
    if (this.errors.size > 0 && this.delivered === 0 && this.retry.length === 0 && this.reject.length === 0) {
      // Nothing went through: the error itself, with the longest wait any group was asked for.
      const first = this.errors.values().next().value!;
      let wait = 0;
      for (const e of this.errors) wait = Math.max(wait, e.retryAfterMs ?? 0);
      throw wait > 0 && first.retryAfterMs !== wait
        ? new RetryableError(first.message, { retryAfterMs: wait, cause: first })
        : first;
    }
    for (const entry of this.stopped) this.retry.push(entry);
    if (this.retry.length === 0 && this.reject.length === 0) return undefined;
    const retryReason = describeRetries(this.retryReasons, this.errors);
    return { retry: this.retry, reject: this.reject, ...(retryReason && { retryReason }) };
  }
}

/**
 * WriteResult.retryReason from what was handed back: each per-item reason with how many items
 * gave it (`es_rejected_execution_exception ×12`), then each error that stopped a request.
 */
export function describeRetries(
  reasons: ReadonlyMap<string, number>,
  failed: Iterable<Error>,
): string | undefined {
  const parts = [...reasons].map(([reason, count]) => `${reason} ×${count}`);
  for (const error of failed) parts.push(`a request failed: ${error.message}`);
  return parts.length > 0 ? parts.join('; ') : undefined;
}

function abortedBeforeSending(signal: AbortSignal): RetryableError {
  return new RetryableError(`write aborted before this request was sent: ${errorMessage(signal.reason)}`);
}
