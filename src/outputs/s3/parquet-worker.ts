import { parentPort } from 'node:worker_threads';
import { encodeParquet, type ParquetJob } from './parquet.ts';

/** The worker thread parquet-thread.ts starts: one job at a time, answered in order. */
parentPort?.on(
  'message',
  ({ id, job, cancelled }: { id: number; job: ParquetJob; cancelled: Int32Array }) => {
    if (Atomics.load(cancelled, 0) === 1) {
      parentPort?.postMessage({ id, error: 'skipped: its write was aborted while it waited' });
      return;
    }
    try {
      const result = encodeParquet(job);
      parentPort?.postMessage({ id, result }, [result.body.buffer as ArrayBuffer]);
    } catch (err) {
      parentPort?.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
    }
  },
);
