import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregatorRegistry } from 'prom-client';
import { newCounters } from '../../src/delivery/driver.ts';
import { type BufferStats, Metrics } from '../../src/metrics/registry.ts';
import { sample } from '../support/prom-text.ts';

function stats(overrides: Partial<BufferStats>): BufferStats {
  return {
    ...newCounters(),
    stageLength: 0,
    stageBytes: 0,
    queueLength: 0,
    queueBytes: 0,
    totalLimitBytes: 1000,
    retryWait: 0,
    deadLetterChunks: 0,
    deadLetterRecords: 0,
    halted: 0,
    ...overrides,
  };
}

/** Two workers' metrics merged as the supervisor merges them. */
async function merged(sharedBuffer: boolean, perWorker: Partial<BufferStats>[]): Promise<string> {
  const snapshots = await Promise.all(
    perWorker.map(async (s, i) => {
      const metrics = new Metrics({ sharedBuffer });
      metrics.registerOutput({ id: 'out', type: 'null', stats: () => stats(s) });
      metrics.inputRecords.inc({ plugin_id: 'in', type: 'http' }, 10 * (i + 1));
      return metrics.snapshot();
    }),
  );
  return AggregatorRegistry.aggregate(snapshots).metrics();
}

describe('metrics of several workers', () => {
  const workers = [
    { queueLength: 3, queueBytes: 300, emitRecords: 5, retryWait: 2, deadLetterChunks: 1 },
    { queueLength: 4, queueBytes: 400, emitRecords: 7, retryWait: 9, deadLetterChunks: 1 },
  ];
  const out = { plugin_id: 'out' };

  it('memory buffers: each worker holds its own, so sizes add up', async () => {
    const text = await merged(false, workers);
    assert.equal(sample(text, 'fluentd_output_status_buffer_queue_length', out).value, 7);
    assert.equal(sample(text, 'fluentd_output_status_buffer_total_bytes', out).value, 700);
    assert.equal(sample(text, 'estuary_dead_letter_chunks', out).value, 2);
    // Each worker's own limit, 70% and 60% free: the fullest shows (its senders wait).
    assert.equal(sample(text, 'fluentd_output_status_buffer_available_space_ratio', out).value, 60);
    assert.equal(sample(text, 'fluentd_output_status_emit_records', out).value, 12);
    assert.equal(sample(text, 'fluentd_output_status_retry_wait', out).value, 9);
    assert.equal(sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'in' }).value, 30);
  });

  it('a shared Redis buffer: every worker reads the same sizes, so they count once', async () => {
    // Snapshots taken a moment apart may differ a little: the largest stands.
    const text = await merged(true, workers);
    assert.equal(sample(text, 'fluentd_output_status_buffer_queue_length', out).value, 4);
    assert.equal(sample(text, 'fluentd_output_status_buffer_total_bytes', out).value, 400);
    assert.equal(sample(text, 'estuary_dead_letter_chunks', out).value, 1);
    assert.equal(sample(text, 'fluentd_output_status_buffer_available_space_ratio', out).value, 60);
    // What each process did still adds up.
    assert.equal(sample(text, 'fluentd_output_status_emit_records', out).value, 12);
    assert.equal(sample(text, 'fluentd_input_status_num_records_total', { plugin_id: 'in' }).value, 30);
  });
});
