import { readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { RetryableError } from '../../core/errors.ts';
import { unpackr } from '../../core/msgpack.ts';
import type { ForwardOutputConfig, ForwardServer } from './config.ts';
import type { ForwardMessage } from './encode.ts';

interface PendingAck {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** What the receiver sends us: acks, and HELO/PONG during the handshake. */
export type Inbound = unknown;

/** Runs the handshake on a fresh connection; resolves when the receiver accepted us. */
export type Handshake = (conn: ForwardConnection) => Promise<void>;

/**
 * One connection to one receiver. Messages may be in flight together; acks are matched by
 * chunk id. Any failure (timeout, close, bad answer) fails every pending message, and the
 * connection is not used again.
 */
export class ForwardConnection {
  readonly server: ForwardServer;
  readonly openedAt = Date.now();
  private readonly socket: Socket;
  private readonly pending = new Map<string, PendingAck>();
  private readonly ackTimeoutMs: number;
  private inbox: Inbound[] = [];
  private inboxWaiter: ((value: Inbound) => void) | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;

  private constructor(server: ForwardServer, socket: Socket, ackTimeoutMs: number) {
    this.server = server;
    this.socket = socket;
    this.ackTimeoutMs = ackTimeoutMs;
    socket.on('data', (data) => this.onData(data));
    socket.on('error', (err) =>
      this.fail(new RetryableError(`${label(server)}: ${err.message}`, { cause: err })),
    );
    socket.on('close', () => this.fail(new RetryableError(`${label(server)}: connection closed`)));
  }

  static async open(
    server: ForwardServer,
    config: Pick<ForwardOutputConfig, 'connect_timeout' | 'ack_response_timeout' | 'tls'>,
    configDir: string,
    handshake: Handshake | undefined,
  ): Promise<ForwardConnection> {
    const socket = await dial(server, config, configDir);
    const conn = new ForwardConnection(server, socket, config.ack_response_timeout);
    if (handshake) {
      try {
        await withTimeout(handshake(conn), config.connect_timeout, `${label(server)}: handshake timed out`);
      } catch (err) {
        conn.close();
        throw err;
      }
    }
    return conn;
  }

  get alive(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  /** Writes a message; with a chunk id, resolves when the receiver acks it. */
  send(message: ForwardMessage): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const acked =
      message.chunk === undefined
        ? undefined
        : new Promise<void>((resolvePending, rejectPending) => {
            const timer = setTimeout(() => {
              this.fail(new RetryableError(`${label(this.server)}: no ack within ${this.ackTimeoutMs}ms`));
            }, this.ackTimeoutMs);
            this.pending.set(message.chunk!, { resolve: resolvePending, reject: rejectPending, timer });
          });
    const written = new Promise<void>((resolveWrite, rejectWrite) => {
      this.socket.write(message.bytes, (err) =>
        err ? rejectWrite(new RetryableError(err.message, { cause: err })) : resolveWrite(),
      );
    });
    return acked ? Promise.all([written, acked]).then(() => undefined) : written;
  }

  /** For the handshake: write a raw message. */
  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** For the handshake: the next message the receiver sends. */
  next(): Promise<Inbound> {
    if (this.failure) return Promise.reject(this.failure);
    const value = this.inbox.shift();
    if (value !== undefined) return Promise.resolve(value);
    return new Promise((resolveNext, rejectNext) => {
      this.inboxWaiter = resolveNext;
      this.socket.once('close', () => rejectNext(this.failure ?? new RetryableError('connection closed')));
    });
  }

  close(): void {
    this.fail(new RetryableError(`${label(this.server)}: connection closed by us`));
  }

  private onData(data: Buffer): void {
    this.buffered = this.buffered.length === 0 ? data : Buffer.concat([this.buffered, data]);
    // A receiver only sends small maps; a runaway peer must not grow our memory.
    if (this.buffered.length > 1024 * 1024) {
      this.fail(new RetryableError(`${label(this.server)}: oversized answer`));
      return;
    }
    let values: unknown[];
    try {
      values = unpackr.unpackMultiple(this.buffered) as unknown[];
      this.buffered = Buffer.alloc(0);
    } catch (err) {
      const e = err as { incomplete?: boolean; lastPosition?: number; values?: unknown[] };
      if (!e.incomplete) {
        this.fail(new RetryableError(`${label(this.server)}: undecodable answer`));
        return;
      }
      values = e.values ?? [];
      this.buffered = this.buffered.subarray(e.lastPosition ?? 0);
    }
    for (const value of values) this.onMessage(value);
  }

  private onMessage(value: unknown): void {
    const ack =
      value && typeof value === 'object' && !Array.isArray(value)
        ? (value as { ack?: unknown }).ack
        : undefined;
    if (typeof ack === 'string') {
      const pending = this.pending.get(ack);
      if (pending) {
        this.pending.delete(ack);
        clearTimeout(pending.timer);
        pending.resolve();
      }
      return;
    }
    if (this.inboxWaiter) {
      const waiter = this.inboxWaiter;
      this.inboxWaiter = undefined;
      waiter(value);
    } else {
      this.inbox.push(value);
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.socket.destroy();
  }
}

export function label(server: ForwardServer): string {
  return server.name ?? `${server.host}:${server.port}`;
}

function dial(
  server: ForwardServer,
  config: Pick<ForwardOutputConfig, 'connect_timeout' | 'tls'>,
  configDir: string,
): Promise<Socket> {
  return new Promise((resolveDial, rejectDial) => {
    const tls = config.tls;
    const read = (file: string | undefined) => (file ? readFileSync(resolve(configDir, file)) : undefined);
    const socket = tls
      ? tlsConnect({
          host: server.host,
          port: server.port,
          ca: read(tls.ca_file),
          cert: read(tls.cert_file),
          key: read(tls.key_file),
          rejectUnauthorized: tls.verify,
          servername: tls.server_name ?? server.host,
        })
      : netConnect({ host: server.host, port: server.port });
    const timer = setTimeout(() => {
      socket.destroy();
      rejectDial(new RetryableError(`${label(server)}: connect timed out after ${config.connect_timeout}ms`));
    }, config.connect_timeout);
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      socket.removeAllListeners('error');
      resolveDial(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      rejectDial(new RetryableError(`${label(server)}: ${err.message}`, { cause: err }));
    });
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RetryableError(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
