import type { Socket } from 'node:net';
import type { Batch } from '../../core/batch.ts';
import { errorMessage } from '../../core/errors.ts';
import type { InflightBudget, InflightLease } from '../../core/inflight.ts';
import { parseJson } from '../../core/json-parse.ts';
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
  type EntryOptions,
  type EntryStream,
  isKeepalive,
  type ParsedMessage,
  type ParseLimits,
  parseJsonMessage,
  parseMessage,
  SIGNAL_LOGS,
  toEntries,
  toEntriesNow,
} from '../../protocol/forward/modes.ts';
import type { EmitOptions } from '../input.ts';
import type { DedupeKey, DedupeState } from './dedupe.ts';

/**
 * One forward connection, from accept to close:
 *
 *   accept ──(security)──► HELO sent ──PING ok──► PONG ──┐
 *      │                              └─PING bad─► PONG [false, reason] ─► close
 *      └──────────────────────────────────────────────────┴─► established
 *   established: bytes ─► frame decoder ─► queue ─► in order:
 *      parse ─► entries ─► emit(batch, {wait: true}) ─► ack {"ack": chunk} (if asked)
 *   Message and Forward mode messages of one tag that were read together (a Docker log
 *   driver sends one record per message) join one Group: one Batch, one emit, then each
 *   message's ack. A group is never acked in part: a failed emit acks none of it.
 *   While an emit waits (buffer full under overflow_action block), the socket is not read:
 *   TCP flow control slows the sender instead of memory growing here.
 *   Every read is taken from the process's in-flight budget before it is framed, and given
 *   back once its message is staged (or dropped); while the budget has no room the socket
 *   is not read either.
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
  /** service.max_inflight_bytes, shared with every other connection and input. */
  readonly inflight: InflightBudget;
  dedupe(key: DedupeKey): DedupeState;
  dedupeDone(key: DedupeKey, ok: boolean): void;
  readonly events: ConnectionEvents;
}

/** Metrics and log lines, counted and written by the input. */
export interface ConnectionEvents {
  bytes(count: number): void;
  /** A message accepted: records buffered (0 for an empty or non-log message), time since it arrived. */
  accepted(records: number, seconds: number, messages?: number): void;
  duplicate(peer: Peer, tag: string): void;
  signalDropped(signal: number, peer: Peer, tag: string): void;
  sizeMismatch(peer: Peer, tag: string, declared: number, stream: EntryStream): void;
  badFrame(err: FrameError, peer: Peer): void;
  refused(peer: Peer, reason: string): void;
  /** `messages` not buffered (and not acked) by one failed emit. */
  emitFailed(err: unknown, peer: Peer, tag: string, messages?: number): void;
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
/**
 * A group's bounds (frame bytes, messages): what one emit carries at most. The frames are
 * already read, so this bounds the copy of their entries, not what is read.
 */
const GROUP_MAX_BYTES = 1024 * 1024;
const GROUP_MAX_MESSAGES = 1024;

/** Consecutive messages of one tag: their entries, emitted as one Batch, then acked in order. */
class Group {
  readonly tag: string;
  /** When the first message was taken: the ack latency of all. */
  readonly arrived: number;
  readonly parts: Buffer[] = [];
  /** Chunk ids to ack once the group is durable; duplicates' included, in message order. */
  readonly acks: Uint8Array[] = [];
  /** Dedupe keys this group claimed: done or failed with it. */
  readonly keys: DedupeKey[] = [];
  messages = 0;
  duplicates = 0;
  records = 0;
  payloadBytes = 0;
  frameBytes = 0;

  constructor(tag: string, arrived: number) {
    this.tag = tag;
    this.arrived = arrived;
  }

  fits(tag: string, frameBytes: number): boolean {
    return (
      tag === this.tag &&
      this.messages < GROUP_MAX_MESSAGES &&
      this.frameBytes + frameBytes <= GROUP_MAX_BYTES
    );
  }

  batch(): Batch {
    const payload = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.payloadBytes);
    return { tag: this.tag, payload, count: this.records, bytes: payload.length };
  }
}

function chunkKey(tag: string, chunk: Uint8Array): DedupeKey {
  return { tag, chunk };
}

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
  /** Reads not framed yet: not counted in the in-flight budget until they are. */
  private readonly held: Buffer[] = [];
  /** This connection's share of the in-flight budget: what is framed and not yet staged. */
  private readonly lease: InflightLease;
  /** Of what the lease holds, bytes an emit in progress gives back itself when it settles. */
  private owned = 0;
  /** Stops a wait for budget room when the connection closes. */
  private readonly closing = new AbortController();
  private busy = false;
  /** Messages taken but not emitted yet (only while `busy`). */
  private group: Group | undefined;
  /** The frame decoder checked each frame whole: parsing need not again. */
  private readonly parseLimits: ParseLimits;
  /** With the source_address_key / source_hostname_key fields, once resolved (once per connection). */
  private entryOptions: EntryOptions | undefined;
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
    this.parseLimits = { maxDepth: ctx.limits.maxDepth, checked: true };
    this.lease = ctx.inflight.lease();
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
    } else {
      // After the handshake when there is one: no name lookups for clients that fail it.
      this.prepareEntries();
    }
    if (ctx.maxConnectionAgeMs > 0) {
      // ±10% so connections opened together (a rollout) do not all leave together.
      const age = ctx.maxConnectionAgeMs * (0.9 + Math.random() * 0.2);
      this.timer(age, () => this.drain());
    }
  }

  /**
   * Resolves the source fields ahead of the first message, so it can be grouped too; without
   * them by then, the first message resolves them itself (ingest).
   */
  private prepareEntries(): void {
    this.ctx.fieldsFor(this.peer).then(
      (fields) => {
        this.entryOptions ??= this.makeEntryOptions(fields);
      },
      () => undefined,
    );
  }

  private makeEntryOptions(fields: readonly (readonly [string, string])[] | undefined): EntryOptions {
    const { ctx } = this;
    return {
      maxDepth: ctx.limits.maxDepth,
      maxDecompressedSize: ctx.maxDecompressedSize,
      ...(fields ? { fields } : {}),
    };
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
    this.held.push(chunk);
    if (this.busy) {
      this.socket.pause();
      return;
    }
    void this.pump();
  }

  /** Frames a read already counted in the budget. */
  private feed(chunk: Buffer): void {
    this.decoder ??= createFrameDecoder(chunk[0]!, this.ctx.limits);
    const before = this.decoder.pending;
    let framed = 0;
    try {
      this.decoder.push(chunk, (frame) => {
        framed += frame.length;
        this.queue.push(frame);
      });
    } catch (err) {
      this.queue.push(
        err instanceof FrameError ? err : new FrameError('malformed', `cannot frame: ${errorMessage(err)}`),
      );
      return;
    }
    // Bytes between messages (JSON whitespace) belong to no frame: nothing will give them back.
    this.lease.release(before + chunk.length - framed - this.decoder.pending);
  }

  /** Waits for budget room for a read (the socket is not read meanwhile); false when closed first. */
  private async admit(bytes: number): Promise<boolean> {
    this.socket.pause();
    try {
      await this.lease.take(bytes, { signal: this.closing.signal });
    } catch {
      return false;
    }
    return this.state === 'established' || this.state === 'handshake';
  }

  /** Gives back all the lease holds but what emits in progress will give back themselves. */
  private releaseUnowned(): void {
    this.lease.release(this.lease.held - this.owned);
  }

  /** Holds `bytes` until `work` settles, then gives them back: a message is in memory until staged. */
  private async own<T>(bytes: number, work: () => Promise<T>): Promise<T> {
    this.owned += bytes;
    try {
      return await work();
    } finally {
      this.owned -= bytes;
      this.lease.release(bytes);
    }
  }

  /** Handles queued frames in order, one at a time; reading stays paused while a frame waits. */
  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const item = this.queue.shift();
        let pending: Promise<unknown> | undefined;
        if (item === undefined) {
          const next = this.held[0];
          if (next !== undefined && this.lease.tryTake(next.length)) {
            this.held.shift();
            this.feed(next);
            continue;
          }
          if (next !== undefined && this.group === undefined) {
            if (!(await this.admit(next.length))) return;
            this.held.shift();
            this.feed(next);
            continue;
          }
          // All that is read is taken, or there is no room for more: the group goes out first
          // (its bytes are given back once staged).
          if (this.group === undefined) break;
          pending = this.flushGroup();
        } else if (item instanceof FrameError) {
          // The messages before the bad frame are buffered and acked first.
          if (await this.flushGroup()) this.badFrame(item);
          return;
        } else {
          try {
            pending = this.handleFrame(item);
          } catch (err) {
            if (await this.flushGroup()) this.badFrame(asFrameError(err));
            return;
          }
        }
        if (pending) {
          this.socket.pause();
          await pending;
        }
        if (this.state === 'closing' || this.state === 'closed') return;
      }
    } catch (err) {
      this.badFrame(asFrameError(err));
      return;
    } finally {
      this.busy = false;
      // Only reached with a group on a path that never emits it: its claims are released.
      this.dropGroup();
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
      this.lease.release(frame.length);
      return undefined;
    }
    if (!json && isKeepalive(frame)) {
      this.lease.release(frame.length);
      return undefined;
    }
    const message = json ? parseJsonMessage(frame) : parseMessage(frame, this.parseLimits);
    return this.take(message, json, frame.length);
  }

  /** Joins the message to the group when it can; else it is ingested alone, after the group. */
  private take(message: ParsedMessage, json: boolean, size: number): Promise<void> | undefined {
    const options = this.entryOptions;
    const groupable =
      options !== undefined &&
      // Fluentd's deny_keepalive: only the first message is acked, so none is joined to it.
      this.ctx.keepalive &&
      (message.mode === 'message' || message.mode === 'forward') &&
      message.options.signal === SIGNAL_LOGS;
    if (!groupable) return this.afterGroup(() => this.ingest(message, json, size));
    const tag = this.ctx.tagFor(message.tag);
    if (this.group && !this.group.fits(tag, size))
      return this.afterGroup(() => this.take(message, json, size));
    if (this.join(message, tag, size, options!)) return undefined;
    return this.afterGroup(() => this.ingest(message, json, size));
  }

  /** Runs `next` once the group (if any) is durable and acked; not at all if it failed. */
  private afterGroup(next: () => Promise<void> | undefined): Promise<void> | undefined {
    if (this.group === undefined) return next();
    return this.flushGroup().then((ok) => (ok && this.state === 'established' ? next() : undefined));
  }

  /** Adds the message to the group; false when it must go alone (its chunk is being emitted elsewhere). */
  private join(message: ParsedMessage, tag: string, size: number, options: EntryOptions): boolean {
    const { ctx, peer } = this;
    const { chunk } = message.options;
    const key = chunk && chunkKey(tag, chunk);
    let duplicate = false;
    if (key) {
      const seen = ctx.dedupe(key);
      // Claimed by another message in flight (this group's own, or another connection's):
      // its outcome decides, so this one waits for it alone.
      if (seen.state === 'pending') return false;
      duplicate = seen.state === 'done';
    }
    let stream: EntryStream | undefined;
    if (!duplicate) {
      try {
        stream = toEntriesNow(message, options);
      } catch (err) {
        if (key) ctx.dedupeDone(key, false);
        throw err;
      }
      if (!stream) {
        // Not reached for Message or Forward mode; a claimed chunk is released all the same.
        if (key) ctx.dedupeDone(key, false);
        return false;
      }
      const declared = message.options.size;
      if (declared !== undefined && declared !== stream.items && declared !== stream.count)
        ctx.events.sizeMismatch(peer, tag, declared, stream);
    }
    this.group ??= new Group(tag, performance.now());
    const g = this.group;
    g.messages += 1;
    g.frameBytes += size;
    if (chunk) g.acks.push(chunk);
    if (duplicate) g.duplicates += 1;
    else if (key) g.keys.push(key);
    if (stream && stream.count > 0) {
      g.parts.push(stream.payload);
      g.records += stream.count;
      g.payloadBytes += stream.payload.length;
    }
    return true;
  }

  /** Emits the group as one Batch and acks its messages; false (connection closing) when the emit failed. */
  private flushGroup(): Promise<boolean> {
    const g = this.group;
    if (g === undefined) return Promise.resolve(true);
    this.group = undefined;
    return this.own(g.frameBytes, () => this.emitGroup(g));
  }

  private async emitGroup(g: Group): Promise<boolean> {
    const { ctx, peer } = this;
    try {
      if (g.records > 0) await ctx.emit(g.batch(), { wait: true });
    } catch (err) {
      for (const key of g.keys) ctx.dedupeDone(key, false);
      // No ack for any of them: the sender retries (elsewhere, once this connection is gone).
      ctx.events.emitFailed(err, peer, g.tag, g.messages - g.duplicates);
      this.end();
      return false;
    }
    for (const key of g.keys) ctx.dedupeDone(key, true);
    for (let i = 0; i < g.duplicates; i++) ctx.events.duplicate(peer, g.tag);
    const accepted = g.messages - g.duplicates;
    if (accepted > 0) ctx.events.accepted(g.records, (performance.now() - g.arrived) / 1000, accepted);
    for (const chunk of g.acks) this.ack(chunk, this.decoder?.format === 'json');
    return true;
  }

  private dropGroup(): void {
    const g = this.group;
    if (g === undefined) return;
    this.group = undefined;
    for (const key of g.keys) this.ctx.dedupeDone(key, false);
  }

  private handshake(frame: Uint8Array, json: boolean): void {
    const security = this.ctx.security!;
    let ping: Ping | undefined;
    if (json) {
      try {
        ping = pingFromJson(parseJson(Buffer.from(frame).toString('utf8')));
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
    this.prepareEntries();
  }

  /**
   * One message alone: its `size` frame bytes, and what a compressed payload inflated to, are
   * given back once it is staged, acked or dropped.
   */
  private ingest(message: ParsedMessage, json: boolean, size: number): Promise<void> {
    return this.own(size, async () => {
      const inflated = { bytes: 0 };
      try {
        await this.ingestAlone(message, json, inflated);
      } catch (err) {
        // Closing while waiting for room to inflate into: not acked, sent again elsewhere.
        if (this.closing.signal.aborted) return;
        throw err;
      } finally {
        this.owned -= inflated.bytes;
        this.lease.release(inflated.bytes);
      }
    });
  }

  private async ingestAlone(
    message: ParsedMessage,
    json: boolean,
    inflated: { bytes: number },
  ): Promise<void> {
    const arrived = performance.now();
    const { ctx, peer } = this;
    const tag = ctx.tagFor(message.tag);
    const { chunk, signal } = message.options;
    if (signal !== SIGNAL_LOGS) {
      ctx.events.signalDropped(signal, peer, tag);
      this.ack(chunk, json);
      return;
    }
    const key = chunk && chunkKey(tag, chunk);
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
      this.entryOptions ??= this.makeEntryOptions(await ctx.fieldsFor(peer));
      // Inflated output is taken from the budget as it comes (waiting, the socket paused, as
      // for a read), so many connections' payloads at once stay within it.
      stream = await toEntries(message, this.entryOptions, async (bytes) => {
        await this.lease.take(bytes, { signal: this.closing.signal });
        inflated.bytes += bytes;
        this.owned += bytes;
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
    this.closing.abort();
    this.releaseUnowned();
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
    this.closing.abort();
    this.releaseUnowned();
    this.ctx.events.closed(this);
    this.closedResolve();
  }
}

function asFrameError(err: unknown): FrameError {
  return err instanceof FrameError ? err : new FrameError('malformed', `cannot handle: ${errorMessage(err)}`);
}
