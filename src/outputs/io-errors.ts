import {
  errorMessage,
  HaltError,
  isWriteError,
  RejectError,
  RetryableError,
  type WriteError,
} from '../core/errors.ts';

/**
 * The sink refuses everything until an operator fixes it: permissions, a read-only mount, a
 * reader that went away (a closed stdout). Halting keeps the data; dead-lettering it would
 * throw away records that the first write after the fix could have written.
 */
const HALT_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'EPIPE', 'ERR_STREAM_DESTROYED']);

/**
 * The path cannot be a file: a directory (or a file) where the other should be, a symlink
 * loop, a name too long or refused. For a configured path that is the filesystem's state, so
 * a halt; for a path made from the record's tag it is that record's doing, so a reject.
 */
const PATH_CODES = new Set(['EISDIR', 'ENOTDIR', 'EEXIST', 'ELOOP', 'ENAMETOOLONG', 'EINVAL']);

export interface IoContext {
  /** The path was made from the record (its tag), not only from the configuration. */
  pathFromRecord?: boolean;
}

/**
 * A failed local write as the sink driver should see it. Everything not named above — ENOSPC
 * and EDQUOT (logrotate may free space), EIO, EAGAIN, EMFILE, ESTALE, ENOENT (a mount not
 * there yet) and codes we do not know — is retried: wrongly guessing "never" would lose data
 * that the next try could write.
 */
export function classifyIoError(err: unknown, what: string, context: IoContext = {}): WriteError {
  if (isWriteError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = `${what}: ${errorMessage(err)}`;
  if (typeof code !== 'string') return new RetryableError(message, { cause: err });
  if (HALT_CODES.has(code)) return new HaltError(message, { cause: err });
  if (PATH_CODES.has(code)) {
    return context.pathFromRecord
      ? new RejectError(message, { cause: err })
      : new HaltError(message, { cause: err });
  }
  return new RetryableError(message, { cause: err });
}
