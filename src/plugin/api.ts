/**
 * The plugin API: what a plugin module is handed by Estuary and what it hands back. Types
 * only, so a plugin imports nothing of Estuary at run time:
 *
 *     import type { PluginApi, PluginDefinitions } from 'estuary/plugin';
 *     export default (api: PluginApi): PluginDefinitions => ({ outputs: [ … ] });
 *
 * Everything a plugin needs at run time (zod, the error classes, the JSON encoders) comes in
 * `api`; everything about one configured instance (its id, config, logger, metrics) in `ctx`.
 */
import type { z } from 'zod';
import type { bufferOverridesSchema } from '../config/schema.ts';
import type { duration, port, size } from '../config/values.ts';
import type { Batch } from '../core/batch.ts';
import type { Entry, LogRecord, TaggedEntry } from '../core/entry.ts';
import type {
  BackpressureError,
  HaltError,
  parseRetryAfter,
  RejectError,
  RetryableError,
} from '../core/errors.ts';
import type { EventTime } from '../core/event-time.ts';
import type { Emission, Release } from '../filters/filter.ts';
import type { Logger } from '../logger.ts';
import type { Chunk, Rejection, WriteOptions, WriteResult } from '../outputs/output.ts';

export type { Filter } from '../filters/filter.ts';
export type { Input } from '../inputs/input.ts';
export type { Output } from '../outputs/output.ts';
export type {
  Batch,
  Chunk,
  Emission,
  Entry,
  EventTime,
  Logger,
  LogRecord,
  Rejection,
  Release,
  TaggedEntry,
  WriteOptions,
  WriteResult,
};

/** Label values of a plugin metric; `plugin_id` is added by Estuary. */
export type MetricLabels<L extends string> = Partial<Record<L, string | number>>;

export interface PluginCounter<L extends string = never> {
  /** The registered name (`estuary_plugin_…`). */
  readonly name: string;
  inc(value?: number): void;
  inc(labels: MetricLabels<L>, value?: number): void;
}

export interface PluginGauge<L extends string = never> {
  readonly name: string;
  set(value: number): void;
  set(labels: MetricLabels<L>, value: number): void;
  inc(value?: number): void;
  inc(labels: MetricLabels<L>, value?: number): void;
  dec(value?: number): void;
  dec(labels: MetricLabels<L>, value?: number): void;
}

export interface PluginHistogram<L extends string = never> {
  readonly name: string;
  observe(value: number): void;
  observe(labels: MetricLabels<L>, value: number): void;
  /** Call the returned function to observe the seconds since; it returns them. */
  startTimer(labels?: MetricLabels<L>): () => number;
}

/**
 * Metrics in Estuary's `/metrics`, summed across `service.workers` like the built-in ones.
 * A name not starting with `estuary_plugin_` gets that prefix. Each metric is registered once
 * per process, with a `plugin_id` label; the handle returned is bound to this instance's id,
 * so two instances of one plugin share the metric and differ by that label. Asking again for
 * a name with the same kind, help and labels returns the same metric; anything else throws.
 */
export interface PluginMetrics {
  counter<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): PluginCounter<L>;
  gauge<L extends string = never>(name: string, help: string, labelNames?: readonly L[]): PluginGauge<L>;
  histogram<L extends string = never>(
    name: string,
    help: string,
    labelNames?: readonly L[],
    buckets?: readonly number[],
  ): PluginHistogram<L>;
}

/** What one configured instance of a plugin type gets. */
export interface PluginContext<C = Record<string, unknown>> {
  /** The entry's `id` (default `<type>.<index>`): on its log lines and metrics. */
  readonly id: string;
  readonly type: string;
  /** The entry's options, validated by the type's schema (defaults applied). */
  readonly config: C;
  /** A pino logger whose lines carry `plugin_id`. */
  readonly logger: Logger;
  readonly metrics: PluginMetrics;
  /** Directory of the config file: resolve relative paths of the options against it. */
  readonly configDir: string;
}

export interface PluginEmitOptions {
  /**
   * true (the default): when a routed buffer is full under `overflow_action: block`, wait for
   * room. false: fail at once with api.BackpressureError (answer your sender "try later").
   */
  wait?: boolean;
}

/**
 * Hands records to the pipeline. Resolves once they are durable in the buffer of every output
 * they route to (the promise built-in inputs ack on): acknowledge your source only then.
 * Rejects when they could not be taken; acknowledge nothing then.
 */
export interface PluginEmit {
  /** Records stamped with the time of the call. */
  (tag: string, records: readonly LogRecord[], options?: PluginEmitOptions): Promise<void>;
  /** Entries with their own times (api.EventTime). */
  entries(tag: string, entries: readonly Entry[], options?: PluginEmitOptions): Promise<void>;
}

export interface PluginInput {
  /** Binds (listens, connects) and resolves once it can take data; throw to stop startup. */
  start(emit: PluginEmit): Promise<void>;
  /** Stops taking data and lets what is in flight finish. Called even after a failed start. */
  stop?(): Promise<void>;
  /** Listening and able to take data (/readyz); true when absent. */
  ready?(): boolean;
}

/** As built-in filters: synchronous and cheap; `null` drops the entry, a list fans it out. */
export interface PluginFilter {
  apply(entry: Entry, tag: string): Entry | null | readonly Emission[];
  /** For a filter that holds entries: `release` hands them on later. */
  start?(release: Release): void;
  /** Hand on everything held before this resolves. */
  stop?(): Promise<void>;
}

/**
 * As built-in outputs: `write` says what happened and nothing more — it throws
 * api.RetryableError (network, timeout, 429, 5xx), api.RejectError (this chunk never passes:
 * dead-letter it) or api.HaltError (401, 403, missing target: keep the data, probe, resume);
 * anything else counts as retryable. It never sleeps, never retries, never queues, and passes
 * `options.signal` (the write deadline) to every request.
 */
export interface PluginOutput {
  /** Opens clients; throw for configuration that cannot work (stops startup with this id). */
  start?(): Promise<void>;
  // biome-ignore lint/suspicious/noConfusingVoidType: an `async write() {}` that returns nothing is "all delivered".
  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined | void>;
  /** Releases clients. Called even when start was not. */
  stop?(): Promise<void>;
  /** SIGHUP: reopen files. */
  reopen?(): Promise<void>;
}

/** One component type. Method syntax on purpose: a definition of a narrower schema fits the lists. */
interface ComponentDefinition<S extends z.ZodObject, T> {
  /** The `type:` of config entries; must not be a built-in's or another plugin's. */
  readonly type: string;
  /**
   * The options (every key but type, id, match, buffer). Use api.z; a strict object makes
   * unknown keys errors as they are for built-ins.
   */
  readonly schema: S;
  create(config: z.output<S>, ctx: PluginContext<z.output<S>>): T;
}

export type InputDefinition<S extends z.ZodObject = z.ZodObject> = ComponentDefinition<S, PluginInput>;
export type FilterDefinition<S extends z.ZodObject = z.ZodObject> = ComponentDefinition<S, PluginFilter>;
export interface OutputDefinition<S extends z.ZodObject = z.ZodObject>
  extends ComponentDefinition<S, PluginOutput> {
  /** Buffer settings this type defaults to, as written in a config (`chunk_limit_size: 1MiB`). */
  readonly bufferDefaults?: z.input<typeof bufferOverridesSchema>;
}

export interface PluginDefinitions {
  inputs?: readonly InputDefinition[];
  filters?: readonly FilterDefinition[];
  outputs?: readonly OutputDefinition[];
}

/** The line formats of the `file` and `stdout` outputs. */
export type JsonFormat = 'json' | 'record' | 'fluentd';

export interface EncodeOptions {
  /**
   * `json` (default): `{"tag":…,"time":"<RFC 3339, ns>","record":{…}}`; `record`: the record
   * alone; `fluentd`: `time<TAB>tag<TAB>record`.
   */
  format?: JsonFormat;
}

export interface EncodedChunk {
  bytes: Buffer;
  /** Entries written. */
  count: number;
  /** Entries that cannot be encoded (e.g. an unknown msgpack ext), with why: return them as `reject`. */
  rejected: Rejection[];
}

/** What a plugin's default export receives. */
export interface PluginApi {
  /** Estuary's version (package.json). */
  readonly version: string;
  /** The zod Estuary validates with: schemas built with it give the same `file:line: key:` errors. */
  readonly z: typeof z;
  /** Schemas of Estuary's own value forms, so options read as built-ins' do. */
  readonly schemas: {
    /** `500ms`, `5s`, `72h` or seconds → milliseconds. */
    readonly duration: typeof duration;
    /** `8MiB`, `512KiB`, `10MB` or bytes → bytes. */
    readonly size: typeof size;
    /** 0-65535, also written as a string (`${PORT}`). */
    readonly port: typeof port;
  };
  readonly RetryableError: typeof RetryableError;
  readonly RejectError: typeof RejectError;
  readonly HaltError: typeof HaltError;
  readonly BackpressureError: typeof BackpressureError;
  readonly EventTime: typeof EventTime;
  /** An HTTP Retry-After (seconds or a date) in ms, for `new RetryableError(m, { retryAfterMs })`. */
  readonly parseRetryAfter: typeof parseRetryAfter;
  /** The chunk as JSON lines (`\n` after each), written from its msgpack bytes without decoding. */
  toJsonLines(chunk: Chunk, options?: EncodeOptions): EncodedChunk;
  /** The chunk as one JSON array of its entries, written the same way. */
  toJsonArray(chunk: Chunk, options?: EncodeOptions): EncodedChunk;
  /** JSON of a decoded value (BigInt, binary and EventTime included); never throws on a record. */
  toJson(value: unknown): string;
  /** Identity helpers that type `config` in `create` from the schema. */
  defineInput<S extends z.ZodObject>(definition: InputDefinition<S>): InputDefinition<S>;
  defineFilter<S extends z.ZodObject>(definition: FilterDefinition<S>): FilterDefinition<S>;
  defineOutput<S extends z.ZodObject>(definition: OutputDefinition<S>): OutputDefinition<S>;
}

/** A plugin module's default export. */
export type Plugin = (api: PluginApi) => PluginDefinitions | Promise<PluginDefinitions>;
