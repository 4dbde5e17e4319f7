import { Worker } from 'node:worker_threads';
import type { ParquetJob, ParquetResult } from './parquet.ts';

interface Pending {
  resolve: (result: ParquetResult) => void;
  reject: (err: Error) => void;
}

type Answer = { id: number; result: ParquetResult } | { id: number; error: string };

/**
 * Parquet files written in a worker thread: encoding a 64 MiB chunk takes a second or more
 * of CPU, which on the event loop would stall every input's acknowledgements meanwhile.
 * Started on first use; a thread that dies fails what it held and is started again on the next job.
 */
export class ParquetThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  /** The file for `job`; `job.entries` is moved to the thread (unusable here afterwards). */
  encode(job: ParquetJob, signal: AbortSignal): Promise<ParquetResult> {
    signal.throwIfAborted();
    const worker = this.start();
    const id = this.nextId++;
    // Set on abort: a job still queued behind others is then skipped by the thread, so the
    // next try of a timed-out write does not wait behind its own abandoned work.
    const cancelled = new Int32Array(new SharedArrayBuffer(4));
    return new Promise<ParquetResult>((resolve, reject) => {
      // An aborted write stops waiting; a job already running finishes and its answer is dropped.
      const onAbort = () => {
        Atomics.store(cancelled, 0, 1);
        this.pending.delete(id);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        resolve: (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      });
      worker.postMessage({ id, job, cancelled }, [job.entries.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./parquet-worker.ts', import.meta.url));
    // Never what keeps the process alive: a pending write holds the event loop itself.
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const waiting = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      if (!waiting) return;
      if ('error' in answer) waiting.reject(new Error(`parquet: ${answer.error}`));
      else waiting.resolve(answer.result);
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`parquet worker thread exited (code ${code})`)));
    this.worker = worker;
    return worker;
  }
}
