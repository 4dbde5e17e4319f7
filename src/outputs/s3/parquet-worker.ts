import { parentPort } from 'node:worker_threads';
import { encodeParquet, type ParquetJob } from './parquet.ts';

/** The worker thread parquet-thread.ts starts: one job at a time, answered in order. */
parentPort?.on('message', ({ id, job }: { id: number; job: ParquetJob }) => {
  try {
    const result = encodeParquet(job);
    parentPort?.postMessage({ id, result }, [result.body.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort?.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
