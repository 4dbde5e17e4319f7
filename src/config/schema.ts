import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { duration, port, size, tlsClient } from './values.ts';

/** Retry policy; the defaults are Fluentd's, but with a 5m cap so backoff stays useful. */
export const retrySchema = z.strictObject({
  /** First wait after a failure. */
  wait: duration().optional(),
  exponential_backoff_base: z.number().min(1).optional(),
  /** Upper bound of one wait. */
  max_interval: duration().optional(),
  /** ±12.5% jitter so replicas do not retry in step. */
  randomize: z.boolean().optional(),
  /** Give up (dead-letter) once a chunk has been failing this long. */
  timeout: duration().optional(),
  /** Give up after this many retries. */
  max_times: z.number().int().min(0).optional(),
  /** Never give up on retryable errors. */
  forever: z.boolean().optional(),
});

/** Per-output buffer settings; `service.buffer` holds the defaults, an output's `buffer:` overrides. */
export const bufferOverridesSchema = z.strictObject({
  chunk_limit_size: size().optional(),
  chunk_limit_records: z.number().int().min(1).optional(),
  flush_interval: duration().optional(),
  flush_thread_count: z.number().int().min(1).max(64).optional(),
  total_limit_size: size().optional(),
  overflow_action: z.enum(['block', 'throw_exception', 'drop_oldest_chunk']).optional(),
  /** Flush what is buffered on shutdown (bounded by service.shutdown_timeout). */
  flush_at_shutdown: z.boolean().optional(),
  /** Writes slower than this are logged and counted (fluentd's slow_flush_log_threshold). */
  slow_flush_log_threshold: duration().optional(),
  /** The write deadline: a write still running after this is aborted and retried (on any replica). */
  write_timeout: duration().optional(),
  /** Oldest chunk first, and a chunk waiting on its backoff holds newer ones back (Loki: on by default). */
  ordered: z.boolean().optional(),
  retry: retrySchema.optional(),
  dead_letter: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Memory backend: the oldest dead-letter chunks are dropped past this. */
      max_size: size().optional(),
    })
    .optional(),
});
export type BufferOverrides = z.output<typeof bufferOverridesSchema>;

export interface RetrySettings {
  waitMs: number;
  backoffBase: number;
  maxIntervalMs: number;
  randomize: boolean;
  timeoutMs: number;
  maxTimes: number | undefined;
  forever: boolean;
}

export interface BufferSettings {
  chunkLimitSize: number;
  chunkLimitRecords: number;
  flushIntervalMs: number;
  flushThreadCount: number;
  totalLimitSize: number;
  overflowAction: 'block' | 'throw_exception' | 'drop_oldest_chunk';
  flushAtShutdown: boolean;
  slowFlushThresholdMs: number;
  writeTimeoutMs: number;
  ordered: boolean;
  retry: RetrySettings;
  deadLetter: { enabled: boolean; maxSize: number };
}

export const BUFFER_DEFAULTS: BufferSettings = {
  chunkLimitSize: 8 * 1024 ** 2,
  chunkLimitRecords: Number.POSITIVE_INFINITY,
  flushIntervalMs: 1000,
  flushThreadCount: 1,
  totalLimitSize: 512 * 1024 ** 2,
  overflowAction: 'block',
  flushAtShutdown: true,
  slowFlushThresholdMs: 20_000,
  writeTimeoutMs: 60_000,
  ordered: false,
  retry: {
    waitMs: 1000,
    backoffBase: 2,
    maxIntervalMs: 300_000,
    randomize: true,
    timeoutMs: 72 * 3_600_000,
    maxTimes: undefined,
    forever: false,
  },
  deadLetter: { enabled: true, maxSize: 64 * 1024 ** 2 },
};

/** Defaults ← service.buffer ← output.buffer. */
export function resolveBufferSettings(...layers: (BufferOverrides | undefined)[]): BufferSettings {
  const s: BufferSettings = structuredClone(BUFFER_DEFAULTS);
  for (const o of layers) {
    if (!o) continue;
    s.chunkLimitSize = o.chunk_limit_size ?? s.chunkLimitSize;
    s.chunkLimitRecords = o.chunk_limit_records ?? s.chunkLimitRecords;
    s.flushIntervalMs = o.flush_interval ?? s.flushIntervalMs;
    s.flushThreadCount = o.flush_thread_count ?? s.flushThreadCount;
    s.totalLimitSize = o.total_limit_size ?? s.totalLimitSize;
    s.overflowAction = o.overflow_action ?? s.overflowAction;
    s.flushAtShutdown = o.flush_at_shutdown ?? s.flushAtShutdown;
    s.slowFlushThresholdMs = o.slow_flush_log_threshold ?? s.slowFlushThresholdMs;
    s.writeTimeoutMs = o.write_timeout ?? s.writeTimeoutMs;
    s.ordered = o.ordered ?? s.ordered;
    const r = o.retry ?? {};
    s.retry = {
      waitMs: r.wait ?? s.retry.waitMs,
      backoffBase: r.exponential_backoff_base ?? s.retry.backoffBase,
      maxIntervalMs: r.max_interval ?? s.retry.maxIntervalMs,
      randomize: r.randomize ?? s.retry.randomize,
      timeoutMs: r.timeout ?? s.retry.timeoutMs,
      maxTimes: r.max_times ?? s.retry.maxTimes,
      forever: r.forever ?? s.retry.forever,
    };
    s.deadLetter = {
      enabled: o.dead_letter?.enabled ?? s.deadLetter.enabled,
      maxSize: o.dead_letter?.max_size ?? s.deadLetter.maxSize,
    };
  }
  return s;
}

/** `host:port`, as Sentinel and Cluster seed addresses are written. */
const hostPort = () =>
  z.string().transform((value, ctx) => {
    const m = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
    if (!m || Number(m[2]) > 65535) {
      ctx.addIssue({ code: 'custom', message: `expected host:port, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  });

export const serviceBufferSchema = bufferOverridesSchema
  .extend({
    /** `memory` (embedded, lost on crash) or `redis` (durable, shared by replicas). */
    type: z.enum(['memory', 'redis']).default('memory'),
    /**
     * redis:// or rediss:// (TLS), with `user:password@` and `/db`. With `sentinels` or
     * `cluster_nodes` only its user, password, TLS and db are used.
     */
    redis_url: z
      .string()
      .regex(/^rediss?:\/\/[^\s]*$/, 'expected a redis:// or rediss:// URL')
      .optional(),
    /** Redis Sentinel addresses (`host:port`); the master is `sentinel_name`. */
    sentinels: z.array(hostPort()).min(1).optional(),
    sentinel_name: z.string().min(1).optional(),
    /** Password of the sentinels themselves, when they require one. */
    sentinel_password: z.string().optional(),
    /** Redis Cluster seed nodes (`host:port`). */
    cluster_nodes: z.array(hostPort()).min(1).optional(),
    /**
     * TLS to Redis (and to the sentinels): `ca_file` to verify a private CA, `cert_file` +
     * `key_file` for Redis's `tls-auth-clients`, `verify`. Implied by a rediss:// URL; this
     * block turns TLS on by itself too (Sentinel, Cluster).
     */
    tls: tlsClient().optional(),
    /** First part of every key's hash tag: `{<prefix>:out:<output id>}`. */
    prefix: z
      .string()
      .regex(/^[^{}\s]+$/, 'expected no braces or spaces')
      .default('estuary'),
    /** Redis WAIT: acknowledge a batch only once this many replicas have it. */
    wait_replicas: z.number().int().min(0).default(0),
    /** … waiting at most this long; past it the sender is refused (and retries). */
    wait_timeout: duration().default(1000),
    /** A dead replica's open chunks are sealed, and its in-flight chunks re-delivered, within this. */
    recovery_timeout: duration().default(30_000),
  })
  .superRefine((b, ctx) => {
    if (b.type !== 'redis') return;
    const modes = [b.sentinels && 'sentinels', b.cluster_nodes && 'cluster_nodes'].filter(Boolean);
    if (modes.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['cluster_nodes'],
        message: 'use either sentinels or cluster_nodes',
      });
    if (modes.length === 0 && !b.redis_url)
      ctx.addIssue({
        code: 'custom',
        path: ['redis_url'],
        message: 'required with type redis (or sentinels + sentinel_name, or cluster_nodes)',
      });
    if (b.sentinels && !b.sentinel_name)
      ctx.addIssue({ code: 'custom', path: ['sentinel_name'], message: 'required with sentinels' });
    if (b.recovery_timeout < 1000)
      ctx.addIssue({ code: 'custom', path: ['recovery_timeout'], message: 'expected at least 1s' });
  });
export type ServiceBufferConfig = z.output<typeof serviceBufferSchema>;

export const serviceSchema = z.strictObject({
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /**
   * Processes sharing the listening sockets, each with its own flush workers; `auto` = one
   * per CPU the process may use. The admin server runs in a supervisor that restarts a
   * worker that dies and sums their metrics.
   */
  workers: z
    .union([z.number(), z.string()])
    .default(1)
    .transform((value, ctx) => {
      if (value === 'auto') return availableParallelism();
      const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
      if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 128) return n;
      ctx.addIssue({
        code: 'custom',
        message: `expected a number of processes 1-128 or "auto", got ${JSON.stringify(value)}`,
      });
      return z.NEVER;
    }),
  /** Bound on draining buffers at SIGTERM. */
  shutdown_timeout: duration().default(30_000),
  /**
   * Bytes read from sockets and request bodies and not yet staged in the buffers, for the
   * whole process; past it the HTTP input answers 503 and forward stops reading.
   */
  max_inflight_bytes: size().default(256 * 1024 ** 2),
  /** Admin server: /metrics, /healthz, /readyz, /api/v1/*. */
  http: z
    .strictObject({
      enabled: z.boolean().default(true),
      listen: z.string().default('0.0.0.0'),
      port: port().default(24231),
      /** Bearer tokens for the mutating /api/v1 routes; empty = those routes are refused. */
      auth_tokens: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  buffer: serviceBufferSchema.prefault({}),
});
export type ServiceConfig = z.output<typeof serviceSchema>;

/**
 * The top level. `service` and each component are checked on their own afterwards, so one
 * bad section does not hide the problems of the others.
 */
export const rootSchema = z.strictObject({
  /**
   * Plugin modules, imported in order before the components are checked: paths relative to
   * this file, or package names (from node_modules above this file's directory, then Estuary's).
   */
  plugins: z.array(z.string().min(1)).default([]),
  service: z.unknown().optional(),
  inputs: z.array(z.looseObject({ type: z.string() })).default([]),
  filters: z.array(z.looseObject({ type: z.string() })).default([]),
  outputs: z.array(z.looseObject({ type: z.string() })).default([]),
});
