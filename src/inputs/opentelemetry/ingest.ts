import { type Batch, encodeEntry } from '../../core/batch.ts';
import type { LogRecord } from '../../core/entry.ts';
import { EventTime } from '../../core/event-time.ts';
import { type InflightLease, inflightFull } from '../../core/inflight.ts';
import { getPath } from '../../core/record-path.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { BodyError } from '../http-body.ts';
import type { Emit } from '../input.ts';
import { type OtlpInputConfig, recordKeys } from './config.ts';
import type { DecodeLimits, OtlpResourceLogs, PartialSuccess } from './otlp.ts';
import { type RecordKeys, recordTime, toRecord } from './records.ts';

/**
 * A decoded export request → batches, one per tag, emitted; resolves once every batch is
 * durable in each buffer it routes to (so the listener may answer 200). Shared by the HTTP
 * and gRPC listeners.
 */
export class Ingest {
  private readonly keys: RecordKeys;
  private readonly config: OtlpInputConfig;
  private readonly metrics: Metrics;
  private readonly labels: { plugin_id: string; type: string };
  private readonly emit: Emit;

  constructor(config: OtlpInputConfig, id: string, metrics: Metrics, emit: Emit) {
    this.config = config;
    this.metrics = metrics;
    this.labels = { plugin_id: id, type: 'opentelemetry' };
    this.emit = emit;
    this.keys = recordKeys(config);
  }

  /**
   * The decoder's limits for one request, its decoded values taken from `lease`: past
   * max_records, or more than the whole budget, is a 413; a budget full for now is a 503.
   */
  limits(lease: InflightLease): DecodeLimits {
    return {
      maxDepth: this.config.max_nesting_depth,
      maxRecords: this.config.max_records,
      tooMany: (count) =>
        new BodyError(
          `${count} or more log records in one request; max_records is ${this.config.max_records}`,
          413,
        ),
      charge: (bytes) => {
        if (lease.held + bytes > lease.limit) {
          throw new BodyError(
            `decoding this request would hold more than service.max_inflight_bytes (${lease.limit} bytes): send smaller requests (${mib(lease.held + bytes)})`,
            413,
          );
        }
        if (!lease.tryTake(bytes)) throw inflightFull(lease.limit);
      },
    };
  }

  /** Emits the records; what was refused alone (over max_record_size) is told back. */
  async ingest(
    resourceLogs: readonly OtlpResourceLogs[],
    lease: InflightLease,
    at: number,
  ): Promise<PartialSuccess> {
    const tags = new Map<string, { parts: Buffer[]; bytes: number }>();
    let now: EventTime | undefined;
    const clock = () => (now ??= EventTime.now());
    let rejected = 0;
    let total = 0;
    for (const rl of resourceLogs) {
      for (const sl of rl.scopeLogs) {
        for (const rec of sl.logRecords) {
          const record = toRecord(rec, rl.resource, sl.scope, this.keys);
          const bytes = encodeEntry({ time: recordTime(rec, clock), record });
          if (bytes.length > this.config.max_record_size) {
            rejected += 1;
            continue;
          }
          const tag = this.tagOf(record);
          let batch = tags.get(tag);
          if (!batch) {
            batch = { parts: [], bytes: 0 };
            tags.set(tag, batch);
          }
          batch.parts.push(bytes);
          batch.bytes += bytes.length;
          total += bytes.length;
        }
      }
    }
    // The encoded batches are held too until the buffers have them.
    if (!lease.tryTake(total)) throw inflightFull(lease.limit);
    const batches: Batch[] = [...tags].map(([tag, { parts, bytes }]) => ({
      tag,
      payload: Buffer.concat(parts, bytes),
      count: parts.length,
      bytes,
    }));
    await Promise.all(batches.map((batch) => this.emit(batch, { wait: false })));
    let records = 0;
    for (const batch of batches) records += batch.count;
    if (records > 0) this.metrics.inputRecords.inc(this.labels, records);
    this.metrics.ackLatency.observe(this.labels, (performance.now() - at) / 1000);
    if (rejected === 0) return { rejected: 0, message: '' };
    this.metrics.recordsDropped.inc({ ...this.labels, reason: 'too_large' }, rejected);
    return {
      rejected,
      message: `${rejected} log record${rejected === 1 ? ' was' : 's were'} larger than max_record_size (${this.config.max_record_size} bytes) once mapped to a record`,
    };
  }

  private tagOf(record: LogRecord): string {
    const path = this.config.tag_key;
    if (path === undefined) return this.config.tag;
    const value = getPath(record, path);
    return typeof value === 'string' && value !== '' ? value : this.config.tag;
  }
}

function mib(bytes: number): string {
  return `about ${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
