import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Estuary } from '../app.ts';
import { BearerAuth } from '../core/bearer-auth.ts';
import type { Logger } from '../logger.ts';
import { deadLetterRoutes } from './dead-letter.ts';
import { jsonSafe } from './json.ts';

/** What the admin server reads; tests pass a real Estuary. */
export type AdminTarget = Pick<Estuary, 'metrics' | 'ready' | 'status' | 'buffer'>;

export interface AdminOptions {
  listen: string;
  port: number;
  /** service.http.auth_tokens: bearer tokens for the mutating and record-revealing routes. */
  authTokens: string[];
}

/**
 * /metrics, /healthz, /readyz and /api/v1/*. Reads are open (Prometheus and kubelet probes
 * carry no token); anything that changes a buffer or shows records needs a bearer token.
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
    this.app = Fastify({ logger: false });
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
      const text = await target.metrics.render();
      return reply.type(target.metrics.registry.contentType).send(text);
    });
    this.app.get('/healthz', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('ok'));
    this.app.get('/readyz', async (_request, reply) => {
      if (target.ready()) return { ready: true };
      const status = target.status();
      const inputsNotReady = status.inputs.filter((i) => !i.ready).map((i) => i.id);
      const reason = {
        ready: false,
        inputs_not_ready: inputsNotReady,
        buffer: status.buffer.reachable ? status.buffer.type : `${status.buffer.type} unreachable`,
      };
      return reply.code(503).send(reason);
    });
    this.app.get('/api/v1/status', async () => {
      await target.metrics.refresh();
      return jsonSafe(target.status());
    });
    deadLetterRoutes(this.app, (id) => target.buffer(id), requireToken);
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
