import type { TlsOptions } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readServerTls } from '../../config/values.ts';
import { BearerAuth } from '../../core/bearer-auth.ts';
import { BackpressureError, errorMessage, InputError } from '../../core/errors.ts';
import { InflightBudget } from '../../core/inflight.ts';
import { type Logger, rateLimited } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { BodyError, decompress, jsonShape, mediaType } from '../http-body.ts';
import { BodyListener, header, listenerLimits } from '../http-listener.ts';
import type { Emit, Input } from '../input.ts';
import { type OtlpInputConfig, otlpInputSchema } from './config.ts';
import type { GrpcListener } from './grpc.ts';
import { Ingest } from './ingest.ts';
import {
  decodeJsonRequest,
  decodeRequest,
  encodeResponse,
  encodeStatus,
  OtlpFormatError,
  type OtlpResourceLogs,
  parseOtlpJson,
} from './otlp.ts';

export const LOGS_PATH = '/v1/logs';

/** What a client sending metrics or traces here is told (404 / UNIMPLEMENTED). */
export const LOGS_ONLY = 'Estuary takes OpenTelemetry logs only (POST /v1/logs, LogsService/Export)';

export const opentelemetryInput = defineComponent({
  kind: 'input',
  type: 'opentelemetry',
  schema: otlpInputSchema,
  create: (config, deps) => new OtlpInput(config, deps),
});

type Result = 'ok' | 'bad_request' | 'unauthorized' | 'too_large' | 'timeout' | 'backpressure' | 'error';

/** google.rpc.Code for each answer, as OTLP/HTTP error bodies carry it. */
const RPC_CODE: Record<number, number> = {
  400: 3,
  401: 16,
  404: 12,
  405: 12,
  408: 4,
  413: 3,
  415: 3,
  503: 14,
};

/**
 * OTLP logs over HTTP (`POST /v1/logs`, protobuf or JSON, gzip) and gRPC
 * (`LogsService/Export`). Each request is answered once its records are durable in every
 * buffer they route to, with partial_success for records refused alone; the HTTP input's
 * limits, in-flight budget and answers to hostile input apply to both.
 */
export class OtlpInput implements Input {
  readonly id: string;
  readonly type = 'opentelemetry';
  private readonly config: OtlpInputConfig;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly labels: { plugin_id: string; type: string };
  private readonly auth: BearerAuth;
  private readonly inflight: InflightBudget;
  private readonly maxDecompressed: number;
  private readonly warnRefused: (fields: Record<string, unknown>) => void;
  private listener: BodyListener | undefined;
  private ingest: Ingest | undefined;
  private app: FastifyInstance | undefined;
  private grpc: GrpcListener | undefined;
  private listening = false;
  private stopped: Promise<void> | undefined;

  constructor(config: OtlpInputConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.labels = { plugin_id: deps.id, type: 'opentelemetry' };
    this.auth = new BearerAuth(config.auth_tokens);
    this.inflight = deps.inflight ?? new InflightBudget(Number.POSITIVE_INFINITY);
    this.maxDecompressed = config.max_decompressed_size ?? 4 * config.max_body_size;
    this.warnRefused = rateLimited(1000, (suppressed, fields: Record<string, unknown>) =>
      this.logger.warn({ ...fields, suppressed }, 'otlp request refused'),
    );
  }

  /** The HTTP listener's port once started (the configured one, or the one picked for 0). */
  get httpPort(): number | undefined {
    const address = this.app?.server.address();
    return typeof address === 'object' && address ? address.port : undefined;
  }

  get grpcPort(): number | undefined {
    return this.grpc?.port;
  }

  async start(emit: Emit): Promise<void> {
    if (this.ingest) return;
    const ingest = new Ingest(this.config, this.id, this.metrics, emit);
    this.ingest = ingest;
    const tls = this.config.tls ? await readServerTls(this.config.tls, this.configDir) : undefined;
    try {
      if (this.config.protocols.includes('http')) await this.startHttp(tls);
      if (this.config.protocols.includes('grpc')) {
        // Loaded only when a gRPC listener is configured: @grpc/grpc-js is large.
        const { GrpcListener } = await import('./grpc.ts');
        this.grpc = new GrpcListener(this.config, tls, {
          ingest,
          inflight: this.inflight,
          auth: this.auth,
          refused: (result, reason) => this.count(result, reason),
          ok: () => this.count('ok'),
          bytes: (n) => this.metrics.inputBytes.inc(this.labels, n),
        });
        await this.grpc.start();
        this.logger.info({ address: `${this.config.listen}:${this.grpc.port}` }, 'otlp grpc listening');
      }
    } catch (err) {
      // e.g. a port is taken: leave nothing half-open, so a later start can try again.
      await this.close();
      this.ingest = undefined;
      throw err;
    }
    this.listening = true;
  }

  stop(): Promise<void> {
    this.stopped ??= this.close();
    return this.stopped;
  }

  ready(): boolean {
    return this.listening;
  }

  private async close(): Promise<void> {
    this.listening = false;
    const app = this.app;
    const grpc = this.grpc;
    this.app = undefined;
    this.grpc = undefined;
    await Promise.all([app?.close(), grpc?.stop()]);
  }

  private async startHttp(tls: TlsOptions | undefined): Promise<void> {
    const app = this.build(tls);
    this.app = app;
    await app.listen({ host: this.config.listen, port: this.config.port });
    this.logger.info(
      { address: `${tls ? 'https' : 'http'}://${this.config.listen}:${this.httpPort}${LOGS_PATH}` },
      'otlp http listening',
    );
  }

  private build(tls: TlsOptions | undefined): FastifyInstance {
    const listener = new BodyListener(listenerLimits(this.config), tls, this.inflight, {
      admit: (request, reply) => {
        if (this.auth.enabled && !this.auth.check(header(request, 'authorization'))) {
          reply.header('www-authenticate', 'Bearer');
          return this.refuse(request, reply, 401, 'unauthorized', 'missing or wrong bearer token');
        }
        if (request.url.split('?', 1)[0] !== LOGS_PATH) return this.notFound(request, reply);
        return undefined;
      },
      full: (request, reply, err) => this.refuseError(request, reply, err),
      refusedByNode: ({ status, result, reason, remote }) => this.count(result, reason, { status, remote }),
      stopping: () => this.stopped !== undefined,
    });
    this.listener = listener;
    const app = listener.app;
    app.post(LOGS_PATH, (request, reply) => this.handle(request, reply));
    app.setNotFoundHandler((request, reply) => {
      if (request.method === 'POST') return this.notFound(request, reply);
      return reply
        .code(405)
        .header('allow', 'POST')
        .type('text/plain; charset=utf-8')
        .send(`only POST ${LOGS_PATH} is accepted\n`);
    });
    app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
      if (err instanceof InputError || err instanceof BackpressureError)
        return this.refuseError(request, reply, err);
      const status = err.statusCode ?? 500;
      return this.refuse(
        request,
        reply,
        status,
        status === 413 ? 'too_large' : status < 500 ? 'bad_request' : 'error',
        err.message,
      );
    });
    return app;
  }

  private async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const arrival = this.listener!.arrival(request)!;
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    this.metrics.inputBytes.inc(this.labels, raw.length);
    const json = isJson(arrival.contentType);
    let emitting = false;
    try {
      const type = mediaType(arrival.contentType);
      if (!json && type !== 'application/x-protobuf')
        throw new BodyError(
          `unsupported content-type ${type || '(none)'} (use application/x-protobuf or application/json)`,
          415,
        );
      const body = await decompress(
        raw,
        header(request, 'content-encoding'),
        this.maxDecompressed,
        arrival.lease,
      );
      const limits = this.ingest!.limits(arrival.lease);
      let resourceLogs: OtlpResourceLogs[];
      if (json) {
        // Depth and size are checked on the bytes before any object exists. One level of an
        // AnyValue is four of OTLP/JSON (value, kvlistValue, values, the KeyValue), under the
        // seven of the request's own structure; the decoder then checks the exact depth.
        let shape: { values: number };
        try {
          shape = jsonShape(body, this.config.max_nesting_depth * 4 + 8);
        } catch (err) {
          if (!(err instanceof BodyError)) throw err;
          throw new OtlpFormatError(
            `JSON nested deeper than max_nesting_depth (${this.config.max_nesting_depth}) allows: ${err.message.replace(/.* at /, 'at ')}`,
          );
        }
        limits.charge(shape.values * 16);
        let parsed: unknown;
        try {
          parsed = parseOtlpJson(body.toString('utf8'));
        } catch (err) {
          throw new OtlpFormatError(`invalid JSON: ${errorMessage(err).replace(/, ".*$/s, '')}`);
        }
        resourceLogs = decodeJsonRequest(parsed, limits);
      } else {
        resourceLogs = decodeRequest(body, limits);
      }
      emitting = true;
      const partial = await this.ingest!.ingest(resourceLogs, arrival.lease, arrival.at);
      this.count('ok');
      return reply
        .code(200)
        .type(json ? 'application/json' : 'application/x-protobuf')
        .send(encodeResponse(partial, json));
    } catch (err) {
      if (err instanceof OtlpFormatError) return this.refuse(request, reply, 400, 'bad_request', err.message);
      if (emitting || err instanceof InputError || err instanceof BackpressureError)
        return this.refuseError(request, reply, err);
      return this.refuse(request, reply, 500, 'error', `internal error: ${errorMessage(err)}`);
    }
  }

  private notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    const path = request.url.split('?', 1)[0];
    const reason =
      path === '/v1/metrics' || path === '/v1/traces'
        ? `${path} is not served: ${LOGS_ONLY}`
        : `no such path ${path}: ${LOGS_ONLY}`;
    return this.refuse(request, reply, 404, 'bad_request', reason);
  }

  /**
   * The sender's fault is a 4xx with its reason; anything transient a 503 with Retry-After,
   * which OTLP clients retry (never a 4xx they would drop the data on).
   */
  private refuseError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
    if (err instanceof InputError) {
      const status = err instanceof BodyError ? err.status : 400;
      const result = status === 413 ? 'too_large' : status === 408 ? 'timeout' : 'bad_request';
      return this.refuse(request, reply, status, result, err.message);
    }
    const backpressure = err instanceof BackpressureError;
    reply.header('retry-after', String(backpressure ? Math.max(0, Math.ceil(err.retryAfterSeconds)) : 1));
    return this.refuse(request, reply, 503, backpressure ? 'backpressure' : 'error', errorMessage(err));
  }

  /** Answers with a google.rpc.Status in the request's encoding, as OTLP/HTTP asks. */
  private refuse(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    result: Exclude<Result, 'ok'>,
    reason: string,
  ): FastifyReply {
    const line = reason.replace(/\s+/g, ' ').trim();
    this.count(result, line, {
      status,
      path: request.url.split('?', 1)[0],
      remote: request.socket.remoteAddress,
    });
    const json = isJson(this.listener?.arrival(request)?.contentType);
    return reply
      .code(status)
      .type(json ? 'application/json' : 'application/x-protobuf')
      .send(encodeStatus(RPC_CODE[status] ?? 13, line, json));
  }

  private count(result: Result, reason?: string, fields: Record<string, unknown> = {}): void {
    this.metrics.inputRequests.inc({ ...this.labels, result });
    if (result === 'ok') return;
    if (result === 'backpressure') this.logger.debug({ ...fields, reason }, 'otlp request refused');
    else this.warnRefused({ ...fields, reason });
  }
}

function isJson(contentType: string | undefined): boolean {
  return mediaType(contentType) === 'application/json';
}
