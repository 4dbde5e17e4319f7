import type { Readable } from 'node:stream';
import { type InflightLease, inflightFull } from '../core/inflight.ts';
import { BodyError } from './http-body.ts';

export interface ReadLimits {
  /** max_body_size. */
  maxBytes: number;
  /** Content-Length when sent: those bytes were taken from the lease before reading. */
  declared: number | undefined;
  lease: InflightLease;
  /** A body that sends nothing for this long is abandoned (408); default 30 s. */
  stallMs?: number;
}

/**
 * Fastify sets no request timeout, and a client whose node vanished mid-body never closes:
 * without this its room in the budget would stay taken for good.
 */
const STALL_MS = 30_000;

/**
 * Reads a request body under max_body_size and the in-flight budget. A body with a
 * Content-Length has its room already; a chunked one takes room as it arrives and is no
 * longer read as soon as a chunk does not fit (the caller answers 503 and closes the
 * connection, so the rest is never read).
 */
export function readBody(stream: Readable, limits: ReadLimits): Promise<Buffer> {
  const { maxBytes, declared, lease, stallMs = STALL_MS } = limits;
  if (declared !== undefined && declared > maxBytes) return Promise.reject(tooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stalled = () =>
      stop(new BodyError(`request body stalled: nothing received for ${stallMs / 1000}s`, 408));
    const timer = setTimeout(stalled, stallMs);
    const stop = (err: Error | undefined) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (err) {
        stream.pause();
        reject(err);
      } else {
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      }
    };
    const onData = (chunk: Buffer) => {
      timer.refresh();
      size += chunk.length;
      if (size > maxBytes) stop(tooLarge(maxBytes));
      else if (declared === undefined && !lease.tryTake(chunk.length)) stop(inflightFull(lease.limit));
      else chunks.push(chunk);
    };
    const onEnd = () => stop(undefined);
    const onError = (err: Error) => stop(new BodyError(`request body not complete: ${err.message}`));
    // A client that goes away mid-body: 'close' without 'end'.
    const onClose = () => stop(new BodyError('request body not complete: the client closed the connection'));
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.resume();
  });
}

function tooLarge(maxBytes: number): BodyError {
  return new BodyError(`body exceeds max_body_size (${maxBytes} bytes)`, 413);
}
