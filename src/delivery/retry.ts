import type { RetrySettings } from '../config/schema.ts';
import { RetryableError } from '../core/errors.ts';

/** Wait before retry number `retries + 1`: exponential, capped, ±12.5% jitter; a sink's Retry-After wins when longer. */
export function retryDelay(
  policy: RetrySettings,
  retries: number,
  error?: unknown,
  random = Math.random,
): number {
  // base ** retries overflows to Infinity after ~1000 retries (and 0 × Infinity is NaN).
  const grown = policy.waitMs * policy.backoffBase ** retries;
  let wait = Number.isFinite(grown) ? Math.min(grown, policy.maxIntervalMs) : policy.maxIntervalMs;
  if (policy.randomize) wait *= 1 + 0.125 * (2 * random() - 1);
  const asked = error instanceof RetryableError ? error.retryAfterMs : undefined;
  if (asked !== undefined) wait = Math.max(wait, Math.min(asked, policy.maxIntervalMs));
  return Math.max(0, Math.round(wait));
}

/** Why a failing chunk should stop being retried, or undefined to keep going. */
export function giveUpReason(
  policy: RetrySettings,
  retries: number,
  failingSinceMs: number,
  now = Date.now(),
): string | undefined {
  if (policy.forever) return undefined;
  if (policy.maxTimes !== undefined && retries >= policy.maxTimes)
    return `retry limit reached (max_times ${policy.maxTimes})`;
  if (now - failingSinceMs >= policy.timeoutMs) return `retry timeout reached (${policy.timeoutMs}ms)`;
  return undefined;
}
