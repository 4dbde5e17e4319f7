import type { ServerOptions } from 'node:http';

export interface HttpTimeouts {
  /** From the connection (or the end of the previous request) to the last header byte. */
  headerMs: number;
  /** From the first byte to the last byte of the body: a body that never ends is cut here. */
  requestMs: number;
  /** A keep-alive connection with no request in progress is closed after this. */
  idleMs: number;
}

/**
 * Node's own request timers, which Fastify turns off by default (requestTimeout 0): a
 * header or a chunked body that never ends would hold its connection for ever. Node answers
 * 408 and closes the connection. Its check runs every `connectionsCheckingInterval`
 * (30 s by default): here at most 1 s, so a timeout fires within a second of its value.
 */
export function nodeServerTimeouts(t: HttpTimeouts): {
  fastify: { requestTimeout: number; keepAliveTimeout: number };
  server: Pick<
    ServerOptions,
    'headersTimeout' | 'requestTimeout' | 'keepAliveTimeout' | 'connectionsCheckingInterval'
  >;
} {
  // Node refuses a header timeout longer than the request's, which includes it.
  const headersTimeout = Math.min(t.headerMs, t.requestMs);
  const connectionsCheckingInterval = Math.max(10, Math.min(1000, Math.floor(headersTimeout / 4)));
  return {
    fastify: { requestTimeout: t.requestMs, keepAliveTimeout: t.idleMs },
    server: {
      headersTimeout,
      requestTimeout: t.requestMs,
      keepAliveTimeout: t.idleMs,
      connectionsCheckingInterval,
    },
  };
}
