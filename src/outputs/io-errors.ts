import { errorMessage, RejectError, RetryableError } from '../core/errors.ts';

/**
 * Errors no retry can fix without an operator: permissions, a directory (or file) where the
 * other should be, a read-only mount, a reader that went away. Everything else — ENOSPC and
 * EDQUOT (logrotate may free space), EIO, EAGAIN, EMFILE, ESTALE, and codes we do not know —
 * is retried: guessing "fatal" wrongly would dead-letter data that the next try could write.
 */
const FATAL_CODES = new Set([
  'EACCES',
  'EPERM',
  'EISDIR',
  'ENOTDIR',
  'EEXIST',
  'ENAMETOOLONG',
  'ELOOP',
  'EINVAL',
  'EROFS',
  'EPIPE',
  'ERR_STREAM_DESTROYED',
]);

export function classifyIoError(err: unknown, what: string): RetryableError | RejectError {
  if (err instanceof RetryableError || err instanceof RejectError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = `${what}: ${errorMessage(err)}`;
  if (typeof code === 'string' && FATAL_CODES.has(code)) return new RejectError(message, { cause: err });
  return new RetryableError(message, { cause: err });
}
