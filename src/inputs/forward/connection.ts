import type { Socket } from 'node:net';
import type { Batch } from '../../core/batch.ts';
import { errorMessage } from '../../core/errors.ts';
import { pack } from '../../core/msgpack.ts';
import { encodeAck } from '../../protocol/forward/ack.ts';
import { createFrameDecoder, type FrameDecoder, type FrameLimits } from '../../protocol/forward/decoder.ts';
import { FrameError } from '../../protocol/forward/errors.ts';
import {
  checkPing,
  encodeHelo,
  type Helo,
  type Ping,
  parsePing,
  pingFromJson,
  pong,
  randomSalt,
  type ServerSecurity,
} from '../../protocol/forward/handshake.ts';
import {
  type EntryStream,
  isKeepalive,
  type ParsedMessage,
  parseJsonMessage,
  parseMessage,
  SIGNAL_LOGS,
  toEntries,
} from '../../protocol/forward/modes.ts';
import type { EmitOptions } from '../input.ts';
import type { DedupeState } from './dedupe.ts';

/**
 * One forward connection, from accept to close:
 *
 *   accept ──(security)──► HELO sent ──PING ok──► PONG ──┐
 *      │                              └─PING bad─► PONG [false, reason] ─► close
 *      └──────────────────────────────────────────────────┴─► established
 *   established: bytes ─► frame decoder ─► queue ─► one message at a time:
 *      parse ─► entries ─► emit(batch, {wait: true}) ─► ack {"ack": chunk} (if asked)
 *   While an emit waits (buffer full under overflow_action block), the socket is not read:
 *   TCP flow control slows the sender instead of memory growing here.
 *   A bad frame (malformed, too large, too deep, unknown mode) closes this connection only;
 *   acks of the messages before it are sent first.
 */

/** What the connection needs from its input: settings, emit, dedupe, metrics and logs. */
export interface ConnectionContext {
  readonly limits: FrameLimits;
  readonly maxDecompressedSize: number;
  readonly security: ServerSecurity | undefined;
  /** The source decision for `allow` / `allow_anonymous_source`. */
  sourceAllowed(address: string): boolean;
  /** Fluentd's deny_keepalive when false: close after the first message. */
  readonly keepalive: boolean;
  readonly idleTimeoutMs: number;
  /** 0 = off. */
  readonly maxConnectionAgeMs: number;
  tagFor(tag: string): string;
  /** source_address_key / source_hostname_key fields for this peer (undefined when none). */
  fieldsFor(peer: Peer): Promise<readonly (readonly [string, string])[] | undefined>;
  emit(batch: Batch, options: EmitOptions): Promise<void>;
  dedupe(key: string): DedupeState;
  dedupeDone(key: string, ok: boolean): void;
  readonly events: ConnectionEvents;
}

/** Metrics and log lines, counted and written by the input. */
export interface ConnectionEvents {
  bytes(count: number): void;
  /** A message accepted: records buffered (0 for an empty or non-log message), time since it arrived. */
  accepted(records: number, seconds: number): void;
  duplicate(peer: Peer, tag: string): void;
  signalDropped(signal: number, peer: Peer, tag: string): void;
  sizeMismatch(peer: Peer, tag: string, declared: number, stream: EntryStream): void;
  badFrame(err: FrameError, peer: Peer): void;
  refused(peer: Peer, reason: string): void;
  emitFailed(err: unknown, peer: Peer, tag: string): void;
  closed(connection: ForwardConnection): void;
}

export interface Peer {
  /** IP address; '' for a Unix socket. */
  address: string;
  port: number;
  /** `ip:port`, or `unix:<path>`: what log lines name. */
  label: string;
}

/** A connection that has not finished the handshake in this long is closed. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** After our FIN, how long the peer gets to close before the socket is destroyed. */
const CLOSE_GRACE_MS = 5_000;
/** How long a draining connection may go on reading to finish the message it is in. */
const DRAIN_LIMIT_MS = 30_000;

type State = 'handshake' | 'established' | 'closing' | 'closed';

export class ForwardConnection {
  readonly peer: Peer;
  private readonly socket: Socket;
  private readonly ctx: ConnectionContext;
  private state: State;
  private helo: Helo | undefined;
  private decoder: FrameDecoder | undefined;
  /** Complete frames not handled yet, and a decoder fault after them. */
  private readonly queue: (Uint8Array | FrameError)[] = [];
  /** Reads that arrived while the queue was being worked (the decoder's frames are views). */
  private readonly held: Buffer[] = [];
  private busy = false;
  /** max_connection_age reached or the input stopping: finish what is read, ack, close. */
  private draining = false;
  /** The peer sent FIN: what is queued is handled, an unfinished message is dropped. */
  private peerEnded = false;
  private readonly timers: NodeJS.Timeout[] = [];
  /** Acks of this event-loop turn, written together: one write per read burst, not per message. */
  private acks: Buffer[] = [];
  private ackFlush: NodeJS.Immediate | undefined;
  private closedResolve!: () => void;
  readonly closed = new Promise<void>((resolve) => {
    this.closedResolve = resolve;
  });

  constructor(socket: Socket, peer: Peer, ctx: ConnectionContext) {
    this.socket = socket;
    this.peer = peer;
    this.ctx = ctx;
    this.state = ctx.security ? 'handshake' : 'established';
  }

  start(): void {
    const { socket, ctx } = this;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => this.destroy());
    socket.on('close', () => this.onClose());
    socket.on('timeout', () => this.onIdle());
    if (ctx.idleTimeoutMs > 0) socket.setTimeout(ctx.idleTimeoutMs);
    if (ctx.security) {
      this.helo = { nonce: randomSalt(), auth: randomSalt(), keepalive: ctx.keepalive };
      socket.write(encodeHelo(this.helo));
      this.timer(HANDSHAKE_TIMEOUT_MS, () => {
        if (this.state === 'handshake') {
          this.ctx.events.refused(this.peer, 'no PING within 30s');
          this.destroy();
        }
      });
    }
    if (ctx.maxConnectionAgeMs > 0) {
      // ±10% so connections opened together (a rollout) do not all leave together.
      const age = ctx.maxConnectionAgeMs * (0.9 + Math.random() * 0.2);
      this.timer(age, () => this.drain());
    }
  }

  /** Stop reading; handle what is already read (acking it), then close. */
  drain(): void {
    if (this.draining || this.state === 'closed' || this.state === 'closing') return;
    this.draining = true;
    if (!this.busy && (this.decoder?.pending ?? 0) === 0) this.end();
    // A sender that never pauses between messages cannot hold the connection open forever.
    else this.timer(DRAIN_LIMIT_MS, () => this.end());
  }

  /** Closes at once, without waiting for anything. */
  destroy(): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.socket.destroy();
  }

  private timer(ms: number, fn: () => void): void {
    const t = setTimeout(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private onData(chunk: Buffer): void {
    this.ctx.events.bytes(chunk.length);
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.busy) {
      this.held.push(chunk);
      this.socket.pause();
      return;
    }
    this.feed(chunk);
    void this.pump();
  }

  private feed(chunk: Buffer): void {
    this.decoder ??= createFrameDecoder(chunk[0]!, this.ctx.limits);
    try {
      this.decoder.push(chunk, (frame) => this.queue.push(frame));
    } catch (err) {
      this.queue.push(
        err instanceof FrameError ? err : new FrameError('malformed', `cannot frame: ${errorMessage(err)}`),
      );
    }
  }

  /** Handles queued frames in order, one at a time; reading stays paused while a frame waits. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item === undefined) {
          const next = this.held.shift();
          if (next === undefined) break;
          this.feed(next);
          continue;
        }
        if (item instanceof FrameError) {
          this.badFrame(item);
          return;
        }
        const pending = this.handleFrame(item);
        if (pending) {
          this.socket.pause();
          await pending;
        }
        if (this.state === 'closing' || this.state === 'closed') return;
      }
    } catch (err) {
      this.badFrame(
        err instanceof FrameError ? err : new FrameError('malformed', `cannot handle: ${errorMessage(err)}`),
      );
      return;
    } finally {
      this.busy = false;
    }
    if (this.draining && (this.peerEnded || (this.decoder?.pending ?? 0) === 0)) {
      this.end();
      return;
    }
    if (this.state !== 'established' && this.state !== 'handshake') return;
    if (this.ctx.idleTimeoutMs > 0) this.socket.setTimeout(this.ctx.idleTimeoutMs);
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Returns a promise when the frame's work goes on asynchronously (the socket stays paused meanwhile). */
  private handleFrame(frame: Uint8Array): Promise<void> | undefined {
    const json = this.decoder?.format === 'json';
    if (this.state === 'handshake') {
      this.handshake(frame, json);
      return undefined;
    }
    if (!json && isKeepalive(frame)) return undefined;
    const message = json ? parseJsonMessage(frame) : parseMessage(frame, this.ctx.limits);
    return this.ingest(message, json);
  }

  private handshake(frame: Uint8Array, json: boolean): void {
    const security = this.ctx.security!;
    let ping: Ping | undefined;
    if (json) {
      try {
        ping = pingFromJson(JSON.parse(Buffer.from(frame).toString('utf8')));
      } catch {
        ping = undefined;
      }
    } else {
      ping = parsePing(frame);
    }
    const allowed = this.peer.address === '' || this.ctx.sourceAllowed(this.peer.address);
    const result = checkPing(ping, this.helo!, security, { allowed, address: this.peer.address });
    const answer = pong(result, ping, this.helo!, security);
    this.socket.write(json ? JSON.stringify(answer) : pack(answer));
    if (!result.ok) {
      this.ctx.events.refused(this.peer, result.reason);
      this.end();
      return;
    }
    this.state = 'established';
  }

  private async ingest(message: ParsedMessage, json: boolean): Promise<void> {
    const arrived = performance.now();
    const { ctx, peer } = this;
    const tag = ctx.tagFor(message.tag);
    const { chunk, signal } = message.options;
    if (signal !== SIGNAL_LOGS) {
      ctx.events.signalDropped(signal, peer, tag);
      this.ack(chunk, json);
      return;
    }
    const key = chunk && `${tag}\u0000${Buffer.from(chunk).toString('base64')}`;
    if (key) {
      for (;;) {
        const seen = ctx.dedupe(key);
        if (seen.state === 'new') break;
        if (seen.state === 'done' || (await seen.settled)) {
          ctx.events.duplicate(peer, tag);
          this.ack(chunk, json);
          return;
        }
      }
    }
    let stream: EntryStream;
    try {
      const fields = await ctx.fieldsFor(peer);
      stream = await toEntries(message, {
        maxDepth: ctx.limits.maxDepth,
        maxDecompressedSize: ctx.maxDecompressedSize,
        ...(fields ? { fields } : {}),
      });
    } catch (err) {
      if (key) ctx.dedupeDone(key, false);
      throw err;
    }
    const declared = message.options.size;
    if (declared !== undefined && declared !== stream.items && declared !== stream.count)
      ctx.events.sizeMismatch(peer, tag, declared, stream);
    try {
      if (stream.count > 0) {
        await ctx.emit(
          { tag, payload: stream.payload, count: stream.count, bytes: stream.payload.length },
          { wait: true },
        );
      }
    } catch (err) {
      if (key) ctx.dedupeDone(key, false);
      // No ack: the sender retries (elsewhere, once this connection is gone).
      ctx.events.emitFailed(err, peer, tag);
      this.end();
      return;
    }
    if (key) ctx.dedupeDone(key, true);
    ctx.events.accepted(stream.count, (performance.now() - arrived) / 1000);
    this.ack(chunk, json);
  }

  private ack(chunk: Uint8Array | undefined, json: boolean): void {
    if (this.state !== 'established') return;
    if (chunk && this.socket.writable) {
      this.acks.push(encodeAck(chunk, json ? 'json' : 'msgpack'));
      this.ackFlush ??= setImmediate(() => this.flushAcks());
    }
    if (!this.ctx.keepalive) this.end();
  }

  private flushAcks(): void {
    clearImmediate(this.ackFlush);
    this.ackFlush = undefined;
    if (this.acks.length === 0) return;
    const bytes = this.acks.length === 1 ? this.acks[0]! : Buffer.concat(this.acks);
    this.acks = [];
    if (this.socket.writable) this.socket.write(bytes);
  }

  private badFrame(err: FrameError): void {
    this.ctx.events.badFrame(err, this.peer);
    this.end();
  }

  /** FIN after what is written; nothing more is read. Destroyed if the peer lingers. */
  private end(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.flushAcks();
    this.state = 'closing';
    this.queue.length = 0;
    this.held.length = 0;
    this.socket.end();
    this.socket.resume(); // read and discard until the peer closes, so its FIN is seen
    this.timer(CLOSE_GRACE_MS, () => this.socket.destroy());
  }

  private onEnd(): void {
    // The peer finished sending: handle what is queued, then close our side.
    this.draining = true;
    this.peerEnded = true;
    if (!this.busy) {
      if (this.queue.length > 0 || this.held.length > 0) void this.pump();
      else this.end();
    }
  }

  private onIdle(): void {
    // A wait on the buffer is not idleness.
    if (this.busy) return;
    this.end();
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const t of this.timers) clearTimeout(t);
    this.ctx.events.closed(this);
    this.closedResolve();
  }
}
