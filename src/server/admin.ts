import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Estuary } from '../app.ts';
import { BearerAuth } from '../core/bearer-auth.ts';
import type { Logger } from '../logger.ts';
import { type DeadLetterApi, deadLetterApi, deadLetterRoutes } from './dead-letter.ts';
import { type HttpTimeouts, nodeServerTimeouts } from './http-timeouts.ts';
import { jsonSafe } from './json.ts';
import { queueUiRoutes } from './ui/queue-page.ts';

export type Readiness =
  /** `workers_not_ready`: some worker processes are down while others serve. */
  | { ready: true; workers_not_ready?: number[] }
  | { ready: false; inputs_not_ready: string[]; buffer: string; workers_not_ready?: number[] };

/**
 * What the admin server serves: one Estuary (`adminTarget`), or the workers of a supervisor
 * (cluster/supervisor.ts). Everything is already plain JSON, so it can cross a process.
 */
export interface AdminTarget {
  metrics(): Promise<{ contentType: string; text: string }>;
  readiness(): Promise<Readiness>;
  status(): Promise<unknown>;
  /** Undefined for an output id the config does not have. */
  deadLetter(outputId: string): DeadLetterApi | undefined;
}

/** The admin view of one Estuary in this process. */
export function adminTarget(app: Pick<Estuary, 'metrics' | 'ready' | 'status' | 'buffer'>): AdminTarget {
  return {
    async metrics() {
      return { contentType: app.metrics.registry.contentType, text: await app.metrics.render() };
    },
    async readiness() {
      if (app.ready()) return { ready: true };
      const status = app.status();
      return {
        ready: false,
        inputs_not_ready: status.inputs.filter((i) => !i.ready).map((i) => i.id),
        buffer: status.buffer.reachable ? status.buffer.type : `${status.buffer.type} unreachable`,
      };
    },
    async status() {
      await app.metrics.refresh();
      return jsonSafe(app.status());
    },
    deadLetter(outputId) {
      const buffer = app.buffer(outputId);
      return buffer && deadLetterApi(buffer.id, buffer.deadLetter);
    },
  };
}

export interface AdminOptions {
  listen: string;
  port: number;
  /** service.http.auth_tokens: bearer tokens for the mutating and record-revealing routes. */
  authTokens: string[];
  /** Defaults: ADMIN_TIMEOUTS (tests shorten them). */
  timeouts?: Partial<HttpTimeouts>;
}

/**
 * Probes and scrapes are small requests from nearby: headers within 10 s, a whole request
 * within 30 s, a keep-alive connection idle 5 s (Node's default) is closed. A client that
 * holds a connection open without finishing its request is cut (408), so it cannot pile up
 * connections on the port the kubelet probes.
 */
export const ADMIN_TIMEOUTS: HttpTimeouts = { headerMs: 10_000, requestMs: 30_000, idleMs: 5_000 };

/**
 * /metrics, /healthz, /readyz, /api/v1/* and the queue page /ui. Reads are open (Prometheus
 * and kubelet probes carry no token); anything that changes a buffer or shows records needs a
 * bearer token.
 */
export class AdminServer {
  private readonly app: FastifyInstance;
  private readonly options: AdminOptions;
  private readonly logger: Logger;
  private started = false;
  private closed: Promise<void> | undefined;

  constructor(target: AdminTarget, options: AdminOptions, logger: Logger) {
    this.options = options;
    this.logger = logger;
    const timeouts = nodeServerTimeouts({ ...ADMIN_TIMEOUTS, ...options.timeouts });
    this.app = Fastify({ logger: false, ...timeouts.fastify, http: timeouts.server });
    const auth = new BearerAuth(options.authTokens);
    const requireToken = async (request: FastifyRequest, reply: FastifyReply) => {
      if (!auth.enabled) {
        return reply
          .code(403)
          .send({ error: 'this route is disabled: set service.http.auth_tokens to enable it' });
      }
      if (!auth.check(request.headers.authorization)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="estuary"')
          .send({ error: 'missing or invalid bearer token (Authorization: Bearer <token>)' });
      }
      return undefined;
    };

    this.app.setErrorHandler((error: Error & { statusCode?: number }, request, reply) => {
      const status = error.statusCode !== undefined && error.statusCode < 500 ? error.statusCode : 500;
      if (status >= 500)
        this.logger.error({ err: error, method: request.method, url: request.url }, 'admin request failed');
      return reply.code(status).send({ error: error.message });
    });

    this.app.get('/metrics', async (_request, reply) => {
      const { contentType, text } = await target.metrics();
      return reply.type(contentType).send(text);
    });
    this.app.get('/healthz', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok'));
    this.app.get('/readyz', async (_request, reply) => {
      const readiness = await target.readiness();
      return reply.code(readiness.ready ? 200 : 503).send(readiness);
    });
    this.app.get('/api/v1/status', () => target.status());
    deadLetterRoutes(this.app, (id) => target.deadLetter(id), requireToken);
    queueUiRoutes(this.app);
  }

  async start(): Promise<void> {
    if (this.closed) throw new Error('admin server was stopped');
    await this.app.listen({ host: this.options.listen, port: this.options.port });
    this.started = true;
    const { address, port } = this.address();
    const host = address.includes(':') ? `[${address}]` : address;
    this.logger.info(
      {
        address: `http://${host}:${port}`,
        admin_api: this.options.authTokens.length > 0 ? 'token' : 'read-only (no service.http.auth_tokens)',
      },
      'admin server listening',
    );
  }

  /** Where it listens; throws before start. */
  address(): AddressInfo {
    const address = this.started ? this.app.server.address() : null;
    if (!address || typeof address === 'string') throw new Error('admin server is not listening');
    return address;
  }

  get port(): number {
    return this.address().port;
  }

  /** Safe twice, safe without start. */
  stop(): Promise<void> {
    this.closed ??= this.app.close().then(() => {
      if (this.started) this.logger.info('admin server stopped');
      this.started = false;
    });
    return this.closed;
  }
}
