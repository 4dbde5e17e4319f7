import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { TlsOptions } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { BackpressureError } from '../core/errors.ts';
import { type InflightBudget, type InflightLease, inflightFull } from '../core/inflight.ts';
import { nodeServerTimeouts } from '../server/http-timeouts.ts';
import { readBody } from './http-read.ts';

/**
 * The listener under the inputs that take request bodies (`http`, `opentelemetry`): Node's
 * timeouts, TLS, every POST body read by us under max_body_size and the in-flight budget
 * (room for a declared body taken before a byte of it is read), answers before the body is
 * in closing the connection, and Node's own refusals (408, 400, 431) answered in plain text.
 * The input adds its routes and decides what a request means.
 */

export interface ListenerLimits {
  maxBodySize: number;
  headerTimeout: number;
  bodyTimeout: number;
  requestTimeout: number;
  idleTimeout: number;
}

/** The limits from an input's config keys (the same names in `http` and `opentelemetry`). */
export function listenerLimits(c: {
  max_body_size: number;
  header_timeout: number;
  body_timeout: number;
  request_timeout: number;
  idle_timeout: number;
}): ListenerLimits {
  return {
    maxBodySize: c.max_body_size,
    headerTimeout: c.header_timeout,
    bodyTimeout: c.body_timeout,
    requestTimeout: c.request_timeout,
    idleTimeout: c.idle_timeout,
  };
}

/** What onRequest saw of a POST: its content-type (removed for Fastify), when it came, its budget share. */
export interface Arrival {
  contentType: string | undefined;
  /** performance.now() */
  at: number;
  /** The request's share of service.max_inflight_bytes, given back when its response closes. */
  lease: InflightLease;
  /** Content-Length, when sent and a plain number. */
  declared: number | undefined;
}

export type RefusalResult = 'bad_request' | 'timeout';

export interface ListenerHooks {
  /**
   * A POST arrived, its lease opened: the input may refuse it here, before its body is read
   * (authentication, CORS, path), by returning the reply it sent.
   */
  admit(request: FastifyRequest, reply: FastifyReply, arrival: Arrival): FastifyReply | undefined;
  /** No room in the budget for the declared body: answer 503 (the connection is closed with it). */
  full(request: FastifyRequest, reply: FastifyReply, err: BackpressureError): FastifyReply;
  /** Node refused a request before Fastify saw it; the listener answers, the input counts and logs. */
  refusedByNode(fields: {
    status: number;
    result: RefusalResult;
    reason: string;
    remote: string | undefined;
  }): void;
  /** The input is stopping: answers close their connections. */
  stopping(): boolean;
}

export class BodyListener {
  readonly app: FastifyInstance;
  private readonly arrivals = new WeakMap<FastifyRequest, Arrival>();

  constructor(
    limits: ListenerLimits,
    tls: TlsOptions | undefined,
    inflight: InflightBudget,
    hooks: ListenerHooks,
  ) {
    const timeouts = nodeServerTimeouts({
      headerMs: limits.headerTimeout,
      requestMs: limits.requestTimeout,
      idleMs: limits.idleTimeout,
    });
    const options = {
      logger: false,
      bodyLimit: limits.maxBodySize,
      ...timeouts.fastify,
      http: timeouts.server,
      clientErrorHandler: (err: Error & { code?: string }, socket: Socket) =>
        clientError(err, socket, limits, hooks),
    } as const;
    // Fastify types an HTTPS instance apart; we only use what both share.
    const app = (tls
      ? Fastify({ ...options, https: { ...tls, ...timeouts.server } })
      : Fastify(options)) as unknown as FastifyInstance;
    this.app = app;
    // Reading and decoding are the input's: every body arrives as a Buffer, whatever its
    // content-type, read under max_body_size and the in-flight budget. Fastify refuses
    // malformed content-type headers before any parser runs, so the header is set aside in
    // onRequest and read back from the arrival.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', (request: FastifyRequest, payload: Readable) => {
      const arrival = this.arrivals.get(request);
      // Not a POST: answered unread (Node discards the body as it arrives).
      if (!arrival) return Promise.resolve(undefined);
      return readBody(payload, {
        maxBytes: limits.maxBodySize,
        declared: arrival.declared,
        lease: arrival.lease,
        stallMs: limits.bodyTimeout,
      });
    });
    app.addHook('onRequest', async (request, reply) => {
      if (request.method !== 'POST') return;
      const lease = inflight.lease();
      reply.raw.once('close', () => lease.releaseAll());
      const declared = contentLength(request);
      const arrival = {
        contentType: request.headers['content-type'],
        at: performance.now(),
        lease,
        declared,
      };
      this.arrivals.set(request, arrival);
      delete request.headers['content-type'];
      const refused = hooks.admit(request, reply, arrival);
      if (refused) return refused;
      // Room for the whole body before a byte of it is read; a body over max_body_size is
      // refused by the reader, unread, and takes none.
      if (declared !== undefined && declared <= limits.maxBodySize && !lease.tryTake(declared)) {
        // The body is never read: closing is cheaper than draining it.
        reply.header('connection', 'close');
        return hooks.full(request, reply, inflightFull(lease.limit));
      }
    });
    // Fastify's close waits for every connection; a keep-alive one still open after its last
    // in-flight answer would hold stop() for the whole idle_timeout (72 s by default).
    // An answer before the body is all in (401, 403, 405, a refusal for room): the connection
    // is closed with it, or Node would go on reading a body that may never end.
    app.addHook('onSend', async (request, reply) => {
      if (hooks.stopping() || !request.raw.complete) reply.header('connection', 'close');
    });
  }

  /** The arrival of a POST (undefined for other methods). */
  arrival(request: FastifyRequest): Arrival | undefined {
    return this.arrivals.get(request);
  }
}

/**
 * What Node refuses before a request reaches Fastify: headers or a whole request past
 * header_timeout / request_timeout (408), malformed HTTP (400), headers too large (431).
 * Answered in plain text, and the connection closed.
 */
function clientError(
  err: Error & { code?: string },
  socket: Socket,
  limits: ListenerLimits,
  hooks: ListenerHooks,
): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let result: RefusalResult = 'bad_request';
  let reason = `malformed HTTP request: ${err.message}`;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    result = 'timeout';
    reason = `request not complete within header_timeout (${limits.headerTimeout / 1000}s) or request_timeout (${limits.requestTimeout / 1000}s)`;
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    reason = 'request headers too large';
  }
  hooks.refusedByNode({ status, result, reason, remote: socket.remoteAddress });
  // Not after a response already begun on this connection (a refused request whose body
  // never ended): then the connection is only closed.
  const current = (socket as { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !current?.headersSent) {
    const body = `${reason}\n`;
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Content-Length as a number; undefined when absent or not plain digits (then counted as read). */
function contentLength(request: FastifyRequest): number | undefined {
  const value = request.headers['content-length'];
  return typeof value === 'string' && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

export function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
