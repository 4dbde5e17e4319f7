import { connect as netConnect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { HaltError, RetryableError } from '../../core/errors.ts';
import { unpack } from '../../core/msgpack.ts';
import { parseAck } from '../../protocol/forward/ack.ts';
import { MsgpackFrameDecoder } from '../../protocol/forward/decoder.ts';
import {
  type ClientCredentials,
  checkPong,
  encodePing,
  parseHelo,
} from '../../protocol/forward/handshake.ts';
import { abortError, untilAborted } from '../abort.ts';
import { classifyNetError } from '../net-errors.ts';
import type { ForwardServer } from './config.ts';
import type { ForwardMessage } from './encode.ts';

/** How to reach any receiver of an output; built once, TLS files read then. */
export interface DialSettings {
  connectTimeoutMs: number;
  ackTimeoutMs: number;
  /** Plain TCP when undefined. */
  tls: ConnectionOptions | undefined;
  /** The forward handshake (`security`), when configured. */
  credentials: ClientCredentials | undefined;
}

interface PendingAck {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** A receiver only sends acks, HELO and PONG: small maps and arrays. */
const ANSWER_LIMITS = { maxMessageSize: 64 * 1024, maxDepth: 8 };

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
  private readonly decoder = new MsgpackFrameDecoder(ANSWER_LIMITS);
  /** Frames other than acks (HELO, PONG), copied, for the handshake. */
  private inbox: Buffer[] = [];
  private inboxWaiter: ((frame: Buffer) => void) | undefined;
  private failure: Error | undefined;

  private constructor(server: ForwardServer, socket: Socket, ackTimeoutMs: number) {
    this.server = server;
    this.socket = socket;
    this.ackTimeoutMs = ackTimeoutMs;
    socket.on('data', (data) => this.onData(data));
    // After a TLS 1.3 handshake the server may still refuse our certificate: classified too.
    socket.on('error', (err) => this.fail(classifyNetError(err, label(server))));
    socket.on('close', () => this.fail(new RetryableError(`${label(server)}: connection closed`)));
  }

  /** Connects (and shakes hands); `signal` abandons both. */
  static async open(
    server: ForwardServer,
    settings: DialSettings,
    signal: AbortSignal,
  ): Promise<ForwardConnection> {
    const socket = await dial(server, settings, signal);
    const conn = new ForwardConnection(server, socket, settings.ackTimeoutMs);
    if (settings.credentials) {
      try {
        const handshake = withTimeout(
          conn.handshake(settings.credentials),
          settings.connectTimeoutMs,
          `${label(server)}: handshake timed out`,
        );
        await untilAborted(handshake, signal, label(server), () => conn.close());
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

  /**
   * HELO → PING → PONG, as Fluentd's out_forward. A refusal (a wrong shared_key, user or
   * password, or a receiver whose own key differs) halts the output: only a config change fixes it.
   */
  private async handshake(credentials: ClientCredentials): Promise<void> {
    const helo = parseHelo(await this.next());
    if (!helo)
      throw new RetryableError(
        `${label(this.server)}: expected HELO (is security configured on the receiver?)`,
      );
    const ping = encodePing(helo, credentials);
    this.socket.write(ping.bytes);
    const result = checkPong(await this.next(), helo, ping.salt, credentials);
    if (!result.ok) throw new HaltError(`${label(this.server)}: forward handshake refused: ${result.reason}`);
  }

  private next(): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const frame = this.inbox.shift();
    if (frame !== undefined) return Promise.resolve(frame);
    return new Promise((resolveNext, rejectNext) => {
      this.inboxWaiter = resolveNext;
      this.socket.once('close', () => rejectNext(this.failure ?? new RetryableError('connection closed')));
    });
  }

  close(reason = 'connection closed by us'): void {
    this.fail(new RetryableError(`${label(this.server)}: ${reason}`));
  }

  private onData(data: Buffer): void {
    try {
      this.decoder.push(data, (frame) => this.onFrame(frame));
    } catch {
      this.fail(new RetryableError(`${label(this.server)}: undecodable answer`));
    }
  }

  private onFrame(frame: Uint8Array): void {
    const ack = parseAck(frame);
    if (ack) {
      const id = unpack(ack);
      const pending = typeof id === 'string' ? this.pending.get(id) : undefined;
      if (pending) {
        this.pending.delete(id as string);
        clearTimeout(pending.timer);
        pending.resolve();
      }
      return;
    }
    // Frames are views into the decoder's buffer: keep a copy.
    const copy = Buffer.from(frame);
    if (this.inboxWaiter) {
      const waiter = this.inboxWaiter;
      this.inboxWaiter = undefined;
      waiter(copy);
    } else {
      this.inbox.push(copy);
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

/** A connected (TLS: verified) socket; connect_timeout, `signal` and errors destroy it. */
function dial(server: ForwardServer, settings: DialSettings, signal: AbortSignal): Promise<Socket> {
  const where = label(server);
  if (signal.aborted) return Promise.reject(abortError(signal, where));
  return new Promise((resolveDial, rejectDial) => {
    const { host, port } = server;
    const socket = settings.tls ? tlsConnect({ host, port, ...settings.tls }) : netConnect({ host, port });
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      if (!err) return resolveDial(socket);
      // A destroyed socket may still report an error; heard, it cannot crash the process.
      socket.on('error', () => {});
      socket.destroy();
      rejectDial(err);
    };
    const onAbort = () => settle(abortError(signal, where));
    const onError = (err: Error) => settle(classifyNetError(err, where));
    const timer = setTimeout(
      () => settle(new RetryableError(`${where}: connect timed out after ${settings.connectTimeoutMs}ms`)),
      settings.connectTimeoutMs,
    );
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', onError);
    socket.once(settings.tls ? 'secureConnect' : 'connect', () => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      settle();
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
