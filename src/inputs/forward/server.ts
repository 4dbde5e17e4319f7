import { chmod, lstat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Logger } from '../../logger.ts';
import { unmapIPv4 } from './allow-list.ts';
import type { Peer } from './connection.ts';

/**
 * The accept loop of a forward input: TCP, TCP+TLS, or a Unix socket (Docker's `fluentd`
 * log driver, `fluentd-address: unix:///…`). Past `connectionLimit` open connections new
 * ones are closed at once (counted, logged once in a while); everything else is the
 * connection's business.
 */

export type Listen =
  | { kind: 'tcp'; host: string; port: number; tls?: TlsOptions }
  | { kind: 'unix'; path: string; mode?: number };

export interface ServerHooks {
  connection(socket: Socket, peer: Peer): void;
  refusedOverLimit(): void;
  tlsError(err: Error, address: string | undefined): void;
}

export class ForwardServer {
  private readonly server: Server;
  private readonly spec: Listen;
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

  constructor(spec: Listen, connectionLimit: number, hooks: ServerHooks, logger: Logger) {
    this.spec = spec;
    this.logger = logger;
    // allowHalfOpen: a sender that half-closes still gets the acks of what it sent.
    const onSocket = (socket: Socket) => hooks.connection(socket, peerOf(socket, spec));
    if (spec.kind === 'tcp' && spec.tls) {
      const server = createTlsServer({ ...spec.tls, allowHalfOpen: true }, onSocket);
      server.on('tlsClientError', (err, socket) => hooks.tlsError(err, socket.remoteAddress));
      this.server = server;
    } else {
      this.server = createServer({ allowHalfOpen: true }, onSocket);
    }
    this.server.maxConnections = connectionLimit;
    this.server.on('drop', () => hooks.refusedOverLimit());
    this.server.on('error', (err) => this.logger.error({ err: err.message }, 'forward listener error'));
  }

  /** Binds; resolves with what log lines and tests need (the bound port for port 0). */
  async listen(): Promise<{ address: string; port: number }> {
    const { spec, server } = this;
    if (spec.kind === 'unix') await removeStaleSocket(spec.path);
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => reject(err);
      server.once('error', fail);
      const done = () => {
        server.off('error', fail);
        resolve();
      };
      if (spec.kind === 'unix') server.listen({ path: spec.path, backlog: 1024 }, done);
      else server.listen({ host: spec.host, port: spec.port, backlog: 1024 }, done);
    });
    if (spec.kind === 'unix') {
      if (spec.mode !== undefined) await chmod(spec.path, spec.mode);
      return { address: `unix://${spec.path}`, port: 0 };
    }
    const bound = server.address();
    const port = typeof bound === 'object' && bound ? bound.port : spec.port;
    const scheme = spec.tls ? 'tls' : 'tcp';
    return { address: `${scheme}://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${port}`, port };
  }

  /** Stops accepting. Open connections are the input's to drain. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      // The callback only fires once every connection is gone; stopping to accept is immediate.
      this.server.close(() => resolve());
    });
    return this.closing;
  }
}

function peerOf(socket: Socket, spec: Listen): Peer {
  if (spec.kind === 'unix') return { address: '', port: 0, label: `unix:${spec.path}` };
  const address = unmapIPv4(socket.remoteAddress ?? '');
  const port = socket.remotePort ?? 0;
  return { address, port, label: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` };
}

/** A socket file left by a process that died is removed; one something listens on is not. */
async function removeStaleSocket(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => undefined);
  if (!stat?.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await unlink(path).catch(() => undefined);
}
