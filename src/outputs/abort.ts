import { errorMessage, RetryableError } from '../core/errors.ts';

/**
 * The error of a write whose signal aborted (its deadline passed, or Estuary is stopping):
 * nothing is wrong with the data or the sink's answer, so the chunk is simply tried again.
 */
export function abortError(signal: AbortSignal, what: string): RetryableError {
  const reason = signal.reason === undefined ? 'aborted' : errorMessage(signal.reason);
  return new RetryableError(`${what}: abandoned: ${reason}`, { cause: signal.reason });
}

/**
 * `work`, or a RetryableError as soon as `signal` aborts, whichever comes first. `release`
 * frees what the work holds (a socket, a connection), so nothing keeps waiting on a sink that
 * does not answer; the work's own later failure is then ignored, never left unhandled.
 */
export function untilAborted<T>(
  work: Promise<T>,
  signal: AbortSignal,
  what: string,
  release?: () => void,
): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    release?.();
    return Promise.reject(abortError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      release?.();
      reject(abortError(signal, what));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
