import { promisify } from 'node:util';
import { gzip as gzipCallback, zstdCompress as zstdCallback } from 'node:zlib';
import { resolveRegion } from '../../aws/config.ts';
import { classifyAwsError } from '../../aws/errors.ts';
import { decodeSpans, EntryCursor, type EntrySpan } from '../../core/entry-cursor.ts';
import { HaltError, type WriteError } from '../../core/errors.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import { encodeFailure, outputSizeHint } from '../format.ts';
import type { Chunk, Output, Rejection, WriteOptions, WriteResult } from '../output.ts';
import type { S3Uploader } from './client.ts';
import { defaultKeyFormat, type S3Config, s3Schema } from './config.ts';
import { JsonLineWriter } from './json-lines.ts';
import { closeKey, KeyFormat } from './key-format.ts';
import type { ParquetThread } from './parquet-thread.ts';
import { NoLogKeyError, PlainWriter } from './plain.ts';

// In libuv's thread pool: a 64MiB chunk's JSON compressed on the event loop would stall every input.
const COMPRESS = {
  gzip: promisify(gzipCallback),
  zstd: promisify(zstdCallback),
} as const;
const MiB = 1024 * 1024;

/** Amazon S3 (and S3-compatible stores): one object per key a chunk's records resolve to. */
export const s3Output = defineComponent({
  kind: 'output',
  type: 's3',
  schema: s3Schema,
  // Fluent Bit's total_file_size / upload_timeout: fewer, larger objects are cheaper to store
  // and to query; the price is up to 5 minutes of delay and 64MiB of buffer per open chunk.
  bufferDefaults: { chunk_limit_size: 64 * MiB, flush_interval: 300_000 },
  create: (config, deps) => new S3Output(config, deps),
});

/** One object's records: their lines, and which entries they are (decoded only if refused). */
interface Group {
  openKey: string;
  out: JsonBuffer;
  spans: EntrySpan[];
  count: number;
}

/** S3's limit on a key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

export class S3Output implements Output {
  readonly id: string;
  readonly type = 's3';
  private readonly config: S3Config;
  private readonly logger: Logger;
  private readonly keys: KeyFormat;
  private uploader: S3Uploader | undefined;
  private parquet: ParquetThread | undefined;
  private readonly uploaded: {
    ok: ReturnType<Metrics['s3Objects']['labels']>;
    error: ReturnType<Metrics['s3Objects']['labels']>;
    bytes: ReturnType<Metrics['s3ObjectBytes']['labels']>;
  };

  constructor(config: S3Config, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.logger = deps.logger;
    this.keys = new KeyFormat(
      config.key_format ?? defaultKeyFormat(config),
      config.key_format_tag_delimiters,
    );
    const labels = { plugin_id: deps.id, type: 's3' };
    this.uploaded = {
      ok: deps.metrics.s3Objects.labels({ ...labels, result: 'ok' }),
      error: deps.metrics.s3Objects.labels({ ...labels, result: 'error' }),
      bytes: deps.metrics.s3ObjectBytes.labels(labels),
    };
  }

  /** Loads the SDK and builds the client; contacts nothing, so Estuary starts while S3 is unreachable. */
  async start(): Promise<void> {
    await this.open();
  }

  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    return untilAborted(this.upload(chunk, options.signal), options.signal, `${this.id}: uploading`);
  }

  async stop(): Promise<void> {
    const uploader = this.uploader;
    this.uploader = undefined;
    uploader?.destroy();
    await this.parquet?.close();
  }

  private async open(): Promise<S3Uploader> {
    if (this.uploader) return this.uploader;
    const region = resolveRegion(this.config);
    if (region === undefined)
      throw new HaltError(`${this.id}: no region: set \`region\` or the AWS_REGION environment variable`);
    // The SDK is loaded only by configs that use it.
    const { S3Uploader } = await import('./client.ts');
    this.uploader ??= new S3Uploader({
      aws: this.config,
      region,
      partSize: this.config.upload_chunk_size,
      usePutObject: this.config.use_put_object,
      objects: {
        storageClass: this.config.storage_class,
        serverSideEncryption: this.config.server_side_encryption,
        kmsKeyId: this.config.kms_key_id,
        cannedAcl: this.config.canned_acl,
        tagging: this.config.tagging && new URLSearchParams(this.config.tagging).toString(),
      },
    });
    return this.uploader;
  }

  /**
   * Every object of the chunk, one after the other. If one fails, the chunk fails as a whole
   * and is retried whole: the objects already written are overwritten with the same bytes
   * under the same keys, so a retry never duplicates records.
   */
  private async upload(chunk: Chunk, signal: AbortSignal): Promise<WriteResult | undefined> {
    const uploader = await this.open();
    if (this.config.format === 'parquet' && !this.parquet) {
      const { ParquetThread } = await import('./parquet-thread.ts');
      this.parquet ??= new ParquetThread();
    }
    const { groups, rejected } = this.plan(chunk);
    const failures: WriteError[] = [];
    for (const [part, group] of groups.entries()) {
      if (group.count === 0) continue;
      const key = closeKey(group.openKey, chunk.id, part);
      const at = `s3://${this.config.bucket}/${key}`;
      if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
        // Only a long tag makes a key this long: those records can never be stored under it.
        const reason = `${at}: key longer than S3's ${MAX_KEY_BYTES} bytes`;
        for (const entry of decodeSpans(group.spans)) rejected.push({ entry, reason });
        continue;
      }
      if (signal.aborted) throw abortError(signal, at);
      try {
        const object = await this.object(group, rejected, signal);
        if (object === undefined) continue;
        const { body, contentType, contentEncoding } = object;
        await uploader.put({ bucket: this.config.bucket, key, body, contentType, contentEncoding }, signal);
        this.uploaded.ok.inc();
        this.uploaded.bytes.observe(body.length);
        this.logger.debug(
          { chunk_id: chunk.id, key, records: group.count, bytes: body.length },
          'object uploaded',
        );
      } catch (err) {
        this.uploaded.error.inc();
        const error = signal.aborted ? abortError(signal, at) : classifyAwsError(err, at);
        failures.push(error);
        // A halt (credentials, a missing bucket) holds for every object: no use trying the rest.
        if (error instanceof HaltError) break;
      }
    }
    if (failures.length > 0) throw failures.find((f) => f instanceof HaltError) ?? failures[0];
    return rejected.length > 0 ? { reject: rejected } : undefined;
  }

  /**
   * The object's bytes, compressed; undefined when none of its records could be written (each
   * is then in `rejected`). Parquet is written in a worker thread, compression in libuv's pool.
   */
  private async object(
    group: Group,
    rejected: Rejection[],
    signal: AbortSignal,
  ): Promise<{ body: Uint8Array; contentType: string; contentEncoding: string | undefined } | undefined> {
    const { compression, format } = this.config;
    if (format === 'parquet' && this.parquet) {
      const result = await this.parquet.encode(
        {
          entries: joinSpans(group.spans),
          columns:
            this.config.schema && Object.entries(this.config.schema).map(([name, type]) => ({ name, type })),
          dateKey: this.config.json_date_key,
          codec: compression,
        },
        signal,
      );
      if (result.rejected.length > 0) {
        const entries = decodeSpans(group.spans);
        for (const { index, reason } of result.rejected) rejected.push({ entry: entries[index]!, reason });
      }
      if (result.rows === 0) return undefined;
      return { body: result.body, contentType: 'application/vnd.apache.parquet', contentEncoding: undefined };
    }
    const lines = group.out.view();
    // snappy is refused at startup for line formats.
    const body =
      compression === 'none' || compression === 'snappy' ? lines : await COMPRESS[compression](lines);
    return {
      body,
      contentType: format === 'plain' ? 'text/plain; charset=utf-8' : 'application/x-ndjson',
      contentEncoding: compression === 'none' || compression === 'snappy' ? undefined : compression,
    };
  }

  /**
   * The chunk's records grouped by their key, in the order each key first comes. A group none
   * of whose records could be written keeps its place, so the numbers of the others stay fixed.
   */
  private plan(chunk: Chunk): { groups: Group[]; rejected: Rejection[] } {
    const byKey = new Map<string, Group>();
    const rejected: Rejection[] = [];
    const { format } = this.config;
    const json =
      format === 'json_lines'
        ? new JsonLineWriter(this.config.json_date_key, this.config.json_date_format)
        : undefined;
    const plain = format === 'plain' ? new PlainWriter(this.config.log_key ?? 'log') : undefined;
    let group: Group | undefined;
    for (const batch of chunk.batches) {
      const cursor = new EntryCursor(batch.payload);
      while (cursor.next()) {
        const openKey = this.keys.resolveAt(
          batch.tag,
          cursor.sec,
          cursor.nsec,
          cursor.payload,
          cursor.recordStart,
          () => cursor.decode(batch.tag).record,
        );
        if (group?.openKey !== openKey) {
          group = byKey.get(openKey);
          if (!group) {
            // The first object gets room for the whole chunk: most chunks make one object.
            // Parquet is written from the entries themselves: no lines to keep.
            const size =
              format === 'parquet' ? 0 : byKey.size === 0 ? outputSizeHint(chunk.bytes) : 16 * 1024;
            group = { openKey, out: new JsonBuffer(size), spans: [], count: 0 };
            byKey.set(openKey, group);
          }
        }
        try {
          const decode = () => cursor.decode(batch.tag).record;
          if (plain) plain.write(group.out, cursor, decode);
          else json?.write(group.out, cursor, decode);
        } catch (err) {
          // The same on every try (an unknown ext type, no log_key): only this record is refused.
          const reason = err instanceof NoLogKeyError ? err.message : encodeFailure(err);
          rejected.push({ entry: cursor.decode(batch.tag), reason });
          continue;
        }
        group.count += 1;
        const span = group.spans[group.spans.length - 1];
        if (span && span.payload === batch.payload && span.end === cursor.start) span.end = cursor.end;
        else
          group.spans.push({ tag: batch.tag, payload: batch.payload, start: cursor.start, end: cursor.end });
      }
    }
    return { groups: [...byKey.values()], rejected };
  }
}

/** A group's entries as one msgpack stream, in a buffer of its own (it is moved to the parquet thread). */
function joinSpans(spans: readonly EntrySpan[]): Uint8Array {
  let total = 0;
  for (const span of spans) total += span.end - span.start;
  const joined = new Uint8Array(total);
  let at = 0;
  for (const span of spans) {
    joined.set(span.payload.subarray(span.start, span.end), at);
    at += span.end - span.start;
  }
  return joined;
}
