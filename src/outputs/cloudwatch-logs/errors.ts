import { classifyAwsError } from '../../aws/errors.ts';
import { HaltError, RejectError, RetryableError, type WriteError } from '../../core/errors.ts';

/**
 * A failed CloudWatch Logs call as the driver acts on it. CloudWatch answers several things
 * with a 400 that the shared AWS table (aws/errors.ts, where an unnamed 4xx halts) would read
 * otherwise:
 *
 *   InvalidParameterException            PutLogEvents: reject the call's events (the data: too
 *                                        large, out of order, a span over 24 hours); a create
 *                                        call: halt (its settings are the configuration's)
 *   ResourceNotFoundException            halt: the group or stream is missing and may not be
 *                                        created (the output creates it first when allowed)
 *   LimitExceededException               halt: an account quota (groups, streams) is reached
 *   ServiceUnavailableException,         retry
 *   OperationAbortedException
 *   ThrottlingException, 5xx, network,   as aws/errors.ts: retry; halt
 *   AccessDenied, bad credentials
 */
const RETRY = new Set(['ServiceUnavailableException', 'OperationAbortedException']);

/** The SDK error's code (its `name`), duck-typed so this module loads no SDK. */
export function errorCode(err: unknown): string | undefined {
  const name = typeof err === 'object' && err !== null ? (err as { name?: unknown }).name : undefined;
  return typeof name === 'string' ? name : undefined;
}

/** Which call failed: PutLogEvents carries data; the others carry the configuration's names and settings. */
export type CallKind = 'data' | 'setup';

export function classifyCloudWatchError(err: unknown, at: string, kind: CallKind, hint?: string): WriteError {
  const code = errorCode(err);
  const message = `${at}: ${code === undefined ? '' : `${code}: `}${err instanceof Error ? err.message : String(err)}`;
  switch (code) {
    case 'InvalidParameterException':
      return kind === 'data'
        ? new RejectError(message, { cause: err })
        : new HaltError(`${message} (check the output's log group settings)`, { cause: err });
    case 'ResourceNotFoundException':
      return new HaltError(
        `${message} (${hint ?? 'create it'}; the output resumes by itself once it exists)`,
        { cause: err },
      );
    case 'LimitExceededException':
      return new HaltError(`${message} (a CloudWatch Logs quota of the account is reached)`, { cause: err });
  }
  if (code !== undefined && RETRY.has(code)) return new RetryableError(message, { cause: err });
  return classifyAwsError(err, at);
}
