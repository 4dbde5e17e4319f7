import type { ServerOptions } from 'node:https';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { duration, port, readServerTls, size, tlsServer } from '../config/values.ts';
import { type Batch, makeBatch } from '../core/batch.ts';
import { BearerAuth } from '../core/bearer-auth.ts';
import type { Entry } from '../core/entry.ts';
import { BackpressureError, errorMessage, InputError } from '../core/errors.ts';
import { InflightBudget, inflightFull } from '../core/inflight.ts';
import { type Logger, rateLimited } from '../logger.ts';
import type { Metrics } from '../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../registry.ts';
import { BodyError, DEFAULT_MAX_RECORDS, decodeBody } from './http-body.ts';
import { BodyListener, header, listenerLimits } from './http-listener.ts';
import type { Emit, Input } from './input.ts';

const MiB = 1024 * 1024;

const schema = z.strictObject({
  /** All interfaces: in Kubernetes the Service, not the bind address, decides who reaches us. */
  listen: z.string().default('0.0.0.0'),
  /** Fluentd in_http's port, so agents need no change. */
  port: port().default(9880),
  /** Record key holding the event time, as in Fluentd. */
  time_key: z.string().default('time'),
  /** Fluentd removes the time key from the record once it became the event time. */
  keep_time_key: z.boolean().default(false),
  /** Take the tag from this request header (e.g. Fluent Bit's `header_tag`) when present, else from the path. */
  tag_header: z.string().optional(),
  /** Prepended to every tag with a dot, as Fluentd's in_forward does. */
  add_tag_prefix: z.string().optional(),
  /** Fluentd's: every request header as `HTTP_<NAME>` in each record (never Authorization). */
  add_http_headers: z.boolean().default(false),
  /** Fluentd's: `REMOTE_ADDR` in each record, the first X-Forwarded-For entry if any. */
  add_remote_addr: z.boolean().default(false),
  /** Browser origins allowed to post (`*` for any); none by default, as browsers are not the usual sender. */
  cors_allow_origins: z.array(z.string()).default([]),
  /** Sends Access-Control-Allow-Credentials; needs explicit origins, as in Fluentd. */
  cors_allow_credentials: z.boolean().default(false),
  /** Accepted bearer tokens; empty means no authentication (rely on the network). */
  auth_tokens: z.array(z.string()).default([]),
  /** Fluentd's body_size_limit default; a larger raw body gets 413. */
  max_body_size: size().default(32 * MiB),
  /** Largest body after Content-Encoding is undone; default 4 × max_body_size. Larger gets 413. */
  max_decompressed_size: size().optional(),
  /** A request whose headers are not all in by then is answered 408 and its connection closed. */
  header_timeout: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(10_000),
  /** A body that sends nothing for this long is answered 408 and its connection closed. */
  body_timeout: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(30_000),
  /**
   * The whole request, headers and body, must arrive within this, however slowly it trickles:
   * a chunked body that never ends is cut here (408, connection closed).
   */
  request_timeout: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(120_000),
  /**
   * A keep-alive connection without a request for this long is closed. Longer than the
   * senders' own idle close (Fluent Bit's net.keepalive_idle_timeout 30 s, an AWS ALB's 60 s),
   * so a sender never reuses a connection just as it is being closed.
   */
  idle_timeout: duration()
    .refine((ms) => ms > 0, 'must be more than 0')
    .default(72_000),
  /** Deepest nesting of arrays and maps in a body, as forward's option; deeper is a 400. */
  max_nesting_depth: z.number().int().min(4).max(10_000).default(100),
  /**
   * Most records in one request; more is a 413. What decoding a body will hold is also counted
   * from its bytes and taken from `service.max_inflight_bytes` before it is parsed.
   */
  max_records: z.number().int().min(1).default(DEFAULT_MAX_RECORDS),
  /** Fluentd answers 200 with an empty body unless asked for 204. */
  use_204_response: z.boolean().default(false),
  /** HTTPS instead of HTTP; files are read at start, relative to the config file's directory. */
  tls: tlsServer().optional(),
});

type Options = z.output<typeof schema>;

export const httpInput = defineComponent({
  kind: 'input',
  type: 'http',
  schema,
  create: (config, deps) => new HttpInput(config, deps),
});

type Result = 'ok' | 'bad_request' | 'unauthorized' | 'too_large' | 'timeout' | 'backpressure' | 'error';

/** Headers never copied into records or logs: they carry credentials. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * Fluentd's in_http and Fluent Bit's out_http: `POST /<tag>` with JSON, NDJSON, msgpack or a
 * form, one Batch per request, answered only once the batch is durable.
 */
export class HttpInput implements Input {
  readonly id: string;
  readonly type = 'http';
  private readonly options: Options;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly labels: { plugin_id: string; type: string };
  private readonly auth: BearerAuth;
  private readonly warnRefused: (fields: Record<string, unknown>) => void;
  private readonly maxDecompressedSize: number;
  private readonly inflight: InflightBudget;
  /** Built at start: holds what onRequest saw of each POST (its arrival). */
  private listener: BodyListener | undefined;
  private app: FastifyInstance | undefined;
  private emit: Emit | undefined;
  private listening = false;
  private stopped: Promise<void> | undefined;

  constructor(options: Options, deps: ComponentDeps) {
    if (
      options.cors_allow_credentials &&
      (options.cors_allow_origins.length === 0 || options.cors_allow_origins.includes('*'))
    ) {
      throw new Error(
        `${deps.id}: cors_allow_credentials needs explicit cors_allow_origins, not "*" or none`,
      );
    }
    this.id = deps.id;
    this.options = options;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.labels = { plugin_id: deps.id, type: 'http' };
    this.auth = new BearerAuth(options.auth_tokens);
    this.warnRefused = rateLimited(1000, (suppressed, fields: Record<string, unknown>) =>
      this.logger.warn({ ...fields, suppressed }, 'http request refused'),
    );
    this.maxDecompressedSize = options.max_decompressed_size ?? 4 * options.max_body_size;
    this.inflight = deps.inflight ?? new InflightBudget(Number.POSITIVE_INFINITY);
  }

  async start(emit: Emit): Promise<void> {
    if (this.app) return;
    this.emit = emit;
    const https = this.options.tls ? await readServerTls(this.options.tls, this.configDir) : undefined;
    const app = this.build(https);
    this.app = app;
    try {
      await app.listen({ host: this.options.listen, port: this.options.port });
    } catch (err) {
      // e.g. the port is taken: leave nothing half-open, so a later start can try again.
      this.app = undefined;
      await app.close();
      throw err;
    }
    this.listening = true;
    const address = app.server.address();
    const where =
      typeof address === 'object' && address ? `${address.address}:${address.port}` : String(address);
    this.logger.info({ address: `${https ? 'https' : 'http'}://${where}` }, 'http input listening');
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.listening = false;
      await this.app?.close();
    })();
    return this.stopped;
  }

  ready(): boolean {
    return this.listening;
  }

  private build(https: ServerOptions | undefined): FastifyInstance {
    const listener = new BodyListener(listenerLimits(this.options), https, this.inflight, {
      admit: (request, reply) => {
        if (!this.applyCors(request, reply))
          return this.refuse(request, reply, 403, 'unauthorized', 'origin not allowed');
        if (!this.authorized(request)) {
          reply.header('www-authenticate', 'Bearer');
          return this.refuse(request, reply, 401, 'unauthorized', 'missing or wrong bearer token');
        }
        return undefined;
      },
      full: (request, reply, err) => this.refuseError(request, reply, err),
      refusedByNode: ({ status, result, reason, remote }) => {
        this.metrics.inputRequests.inc({ ...this.labels, result });
        this.warnRefused({ status, reason, remote });
      },
      stopping: () => this.stopped !== undefined,
    });
    this.listener = listener;
    const app = listener.app;
    app.post('/*', (request, reply) => this.handle(request, reply));
    if (this.options.cors_allow_origins.length > 0)
      app.options('/*', (request, reply) => this.preflight(request, reply));
    app.setNotFoundHandler((_request, reply) => {
      reply
        .code(405)
        .header('allow', 'POST')
        .type('text/plain; charset=utf-8')
        .send('only POST /<tag> is accepted\n');
    });
    // The body reader's refusals (too large, stalled, in-flight budget full, client gone) and
    // Fastify's own: plain text, counted. Fastify adds `connection: close` when the body was
    // not read whole.
    app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
      if (err instanceof InputError || err instanceof BackpressureError)
        return this.refuseError(request, reply, err);
      const status = err.statusCode ?? 500;
      const result: Result = status === 413 ? 'too_large' : status < 500 ? 'bad_request' : 'error';
      return this.refuse(request, reply, status, result, err.message);
    });
    return app;
  }

  private async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    this.metrics.inputBytes.inc(this.labels, body.length);
    const arrival = this.listener!.arrival(request)!;
    let tag: string | undefined;
    let batch: Batch;
    let emitting = false;
    try {
      tag = this.tagOf(request);
      const entries = await decodeBody(
        {
          body,
          contentType: arrival.contentType,
          contentEncoding: header(request, 'content-encoding'),
          time: queryTime(request.query),
        },
        {
          timeKey: this.options.time_key,
          keepTimeKey: this.options.keep_time_key,
          maxDecompressedSize: this.maxDecompressedSize,
          lease: arrival.lease,
          maxNestingDepth: this.options.max_nesting_depth,
          maxRecords: this.options.max_records,
        },
      );
      if (entries.length === 0) return this.accepted(reply);
      this.addRequestFields(request, entries);
      batch = makeBatch(tag, entries);
      // The encoded batch is held too until the buffers have it.
      if (!arrival.lease.tryTake(batch.bytes)) throw inflightFull(arrival.lease.limit);
      emitting = true;
      await this.emit!(batch, { wait: false });
    } catch (err) {
      if (emitting || err instanceof InputError || err instanceof BackpressureError)
        return this.refuseError(request, reply, err, tag);
      return this.refuse(request, reply, 500, 'error', `internal error: ${errorMessage(err)}`);
    }
    this.metrics.inputRecords.inc(this.labels, batch.count);
    this.metrics.ackLatency.observe(this.labels, (performance.now() - arrival.at) / 1000);
    return this.accepted(reply);
  }

  private accepted(reply: FastifyReply): FastifyReply {
    this.metrics.inputRequests.inc({ ...this.labels, result: 'ok' });
    if (this.options.use_204_response) return reply.code(204).send();
    return reply.code(200).type('text/plain; charset=utf-8').send('');
  }

  /**
   * The answer to a failure: the body's fault is a 4xx with its reason; anything transient is
   * a 503 with Retry-After, never another 4xx (Fluent Bit drops data on any 4xx but 408/429).
   */
  private refuseError(
    request: FastifyRequest,
    reply: FastifyReply,
    err: unknown,
    tag?: string,
  ): FastifyReply {
    if (err instanceof InputError) {
      const status = err instanceof BodyError ? err.status : 400;
      return this.refuse(
        request,
        reply,
        status,
        status === 413 ? 'too_large' : status === 408 ? 'timeout' : 'bad_request',
        err.message,
        tag,
      );
    }
    const backpressure = err instanceof BackpressureError;
    const retryAfter = backpressure ? Math.max(0, Math.ceil(err.retryAfterSeconds)) : 1;
    reply.header('retry-after', String(retryAfter));
    return this.refuse(request, reply, 503, backpressure ? 'backpressure' : 'error', errorMessage(err), tag);
  }

  /** `/app/web` and `/app.web` both give `app.web`, as in Fluentd; a tag header wins when sent. */
  private tagOf(request: FastifyRequest): string {
    let tag = this.options.tag_header ? (header(request, this.options.tag_header)?.trim() ?? '') : '';
    if (!tag) {
      const path = request.url.split('?', 1)[0]!;
      try {
        tag = decodeURIComponent(path)
          .replace(/^\/+|\/+$/g, '')
          .replaceAll('/', '.');
      } catch {
        throw new InputError('the path is not valid percent-encoding');
      }
    }
    if (!tag) throw new InputError('missing tag: POST to /<tag>');
    return this.options.add_tag_prefix ? `${this.options.add_tag_prefix}.${tag}` : tag;
  }

  private addRequestFields(request: FastifyRequest, entries: Entry[]): void {
    const fields: Record<string, string> = {};
    if (this.options.add_http_headers) {
      for (const [name, value] of Object.entries(request.headers)) {
        if (value === undefined || SECRET_HEADERS.has(name)) continue;
        fields[`HTTP_${name.toUpperCase().replaceAll('-', '_')}`] = Array.isArray(value)
          ? value.join(', ')
          : value;
      }
      const contentType = this.listener?.arrival(request)?.contentType;
      if (contentType !== undefined) fields.HTTP_CONTENT_TYPE = contentType;
    }
    if (this.options.add_remote_addr) {
      const forwarded = header(request, 'x-forwarded-for')?.split(',', 1)[0]?.trim();
      fields.REMOTE_ADDR = forwarded || (request.socket.remoteAddress ?? '');
    }
    if (Object.keys(fields).length === 0) return;
    for (const entry of entries) Object.assign(entry.record, fields);
  }

  private authorized(request: FastifyRequest): boolean {
    return !this.auth.enabled || this.auth.check(header(request, 'authorization'));
  }

  /** Sets the CORS response headers; false when the request's origin is not allowed. */
  private applyCors(request: FastifyRequest, reply: FastifyReply): boolean {
    const allowed = this.options.cors_allow_origins;
    const origin = header(request, 'origin');
    if (allowed.length === 0 || origin === undefined) return true;
    const any = allowed.includes('*');
    if (!any && !allowed.includes(origin)) return false;
    reply.header('access-control-allow-origin', any ? '*' : origin);
    if (!any) reply.header('vary', 'Origin');
    if (this.options.cors_allow_credentials) reply.header('access-control-allow-credentials', 'true');
    return true;
  }

  private preflight(request: FastifyRequest, reply: FastifyReply): void {
    if (header(request, 'origin') === undefined || !this.applyCors(request, reply)) {
      reply.code(403).type('text/plain; charset=utf-8').send('origin not allowed\n');
      return;
    }
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST, OPTIONS')
      .header(
        'access-control-allow-headers',
        header(request, 'access-control-request-headers') ?? 'Content-Type, Content-Encoding, Authorization',
      )
      .header('access-control-max-age', '600')
      .send();
  }

  /** Answers a failed request with a one-line reason; logs it without body or credentials. */
  private refuse(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    result: Exclude<Result, 'ok'>,
    reason: string,
    tag?: string,
  ): FastifyReply {
    const line = reason.replace(/\s+/g, ' ').trim();
    this.metrics.inputRequests.inc({ ...this.labels, result });
    const fields = {
      status,
      reason: line,
      tag,
      path: request.url.split('?', 1)[0],
      remote: request.socket.remoteAddress,
      content_type: this.listener?.arrival(request)?.contentType,
      content_encoding: header(request, 'content-encoding'),
      content_length: header(request, 'content-length'),
    };
    // Backpressure is expected under load and the sender retries; everything else loses data
    // or hides a fault, but a flood of bad requests must not flood the log (the metric counts all).
    if (result === 'backpressure') this.logger.debug(fields, 'http request refused');
    else this.warnRefused(fields);
    return reply.code(status).type('text/plain; charset=utf-8').send(`${line}\n`);
  }
}

/** `?time=`; Fastify's query parser gives an array when the key repeats, and the first counts. */
function queryTime(query: unknown): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const value: unknown = (query as Record<string, unknown>).time;
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return typeof first === 'string' ? first : undefined;
}
