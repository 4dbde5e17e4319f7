import { lookupService } from 'node:dns/promises';
import type { Socket } from 'node:net';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';
import { duration, port, readServerTls, size, tlsServer } from '../../config/values.ts';
import type { Batch } from '../../core/batch.ts';
import { BackpressureError, errorMessage } from '../../core/errors.ts';
import { InflightBudget } from '../../core/inflight.ts';
import { type Logger, rateLimited } from '../../logger.ts';
import type { Metrics } from '../../metrics/registry.ts';
import type { FrameError } from '../../protocol/forward/errors.ts';
import type { ServerSecurity } from '../../protocol/forward/handshake.ts';
import type { EntryStream } from '../../protocol/forward/modes.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Emit, Input } from '../input.ts';
import { AllowList, parseEntry } from './allow-list.ts';
import { type ConnectionContext, type ConnectionEvents, ForwardConnection, type Peer } from './connection.ts';
import { ChunkDedupe } from './dedupe.ts';
import { Heartbeat } from './heartbeat.ts';
import { ForwardServer, type Listen } from './server.ts';

/**
 * `type: forward` — Fluentd's in_forward, as every edge agent expects it (Forward Protocol v1).
 *
 *   listener (tcp | tls | unix) ──accept──► ForwardConnection ×N ──► emit ──► pipeline
 *        │  connection_limit                  handshake, frames, acks      (ack once durable)
 *   UDP heartbeat (same port): one byte back   ChunkDedupe: re-sent chunk ids acked, not re-buffered
 */

const MiB = 1024 * 1024;

const securitySchema = z.strictObject({
  /** This server's name in PONG; the clients' digest check uses it. */
  self_hostname: z
    .string()
    .min(1)
    .default(() => hostname()),
  /** The key every client must prove it knows (Fluentd `<security> shared_key`). */
  shared_key: z.string().min(1),
  /** Also require a user (default: on when `users` are listed). */
  user_auth: z.boolean().optional(),
  users: z.array(z.strictObject({ username: z.string().min(1), password: z.string() })).default([]),
  /** false: only sources in `allow` may connect (Fluentd's `<client>` sections). */
  allow_anonymous_source: z.boolean().default(true),
  /** IP addresses and CIDR networks of known clients. */
  allow: z
    .array(
      z.string().refine((s) => parseEntry(s) !== undefined, {
        message: 'expected an IP address or a CIDR network like 10.0.0.0/8',
      }),
    )
    .default([]),
});

const schema = z.strictObject({
  /** All interfaces: in Kubernetes the Service, not the bind address, decides who reaches us. */
  listen: z.string().default('0.0.0.0'),
  /** Fluentd's forward port. The UDP heartbeat listens on the same number. */
  port: port().default(24224),
  /** Listen on this Unix socket instead of TCP (Fluent Bit's `unix_path`; Docker's log driver). */
  unix_path: z.string().optional(),
  /** File mode of the Unix socket, e.g. "0660" (default: as the umask leaves it). */
  unix_perm: z
    .union([z.number().int(), z.string().regex(/^0?[0-7]{3}$/)])
    .transform((v) => (typeof v === 'number' ? v : Number.parseInt(v, 8)))
    .optional(),
  /** TLS on the TCP port (Fluent Bit `tls on`, Fluentd `transport tls`). */
  tls: tlsServer().optional(),
  /** The shared-key handshake (Fluentd `<security>`). Without it, any client is accepted. */
  security: securitySchema.optional(),
  /** Prepended to every tag with a dot, as Fluentd's in_forward does. */
  add_tag_prefix: z.string().min(1).optional(),
  /** Record key set to the client's IP address (Fluentd's). */
  source_address_key: z.string().min(1).optional(),
  /** Record key set to the client's host name, resolved once per connection (Fluentd's). */
  source_hostname_key: z.string().min(1).optional(),
  /** A larger message closes its connection (Fluent Bit's buffer_max_size; 32MiB here, like in_http). */
  max_message_size: size().default(32 * MiB),
  /** Largest CompressedPackedForward payload once decompressed; default 4 × max_message_size. */
  max_decompressed_size: size().optional(),
  /** Deepest nesting of arrays and maps in a message: a deeper one closes its connection. */
  max_nesting_depth: z.number().int().min(4).max(10_000).default(100),
  /** Open connections at most; more are closed at once. */
  connection_limit: z.number().int().min(1).default(10_000),
  /** Close a connection silent this long (0 = never, as Fluentd). */
  idle_timeout: duration().default(0),
  /** false: close each connection after its first message (Fluentd's deny_keepalive). */
  keepalive: z.boolean().default(true),
  /** TCP keepalive probes, so connections of vanished nodes are noticed (after 60s idle). */
  send_keepalive_packet: z.boolean().default(true),
  /** Close a connection this old once its current message is acked, so clients rebalance (0 = off). */
  max_connection_age: duration().default(0),
  /** How long chunk ids are remembered, so a re-sent chunk is acked but not buffered twice (0 = off). */
  dedupe_window: duration().default(5 * 60_000),
  /** Answer Fluentd's UDP heartbeats on the same port (not with unix_path). */
  udp_heartbeat: z.boolean().default(true),
});

type Options = z.output<typeof schema>;

export const forwardInput = defineComponent({
  kind: 'input',
  type: 'forward',
  schema,
  create: (config, deps) => new ForwardInput(config, deps),
});

/** How long stop() lets in-flight messages finish before connections are cut. */
const STOP_GRACE_MS = 5_000;

export class ForwardInput implements Input {
  readonly id: string;
  readonly type = 'forward';
  private readonly options: Options;
  private readonly configDir: string;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly labels: { plugin_id: string; type: string };
  private readonly security: ServerSecurity | undefined;
  private readonly allowList: AllowList | undefined;
  private readonly dedupe: ChunkDedupe;
  private readonly connections = new Set<ForwardConnection>();
  private readonly context: ConnectionContext;
  private readonly inflight: InflightBudget;
  private readonly heartbeat: Heartbeat;
  private server: ForwardServer | undefined;
  private emitFn: Emit | undefined;
  private listening = false;
  private stopped: Promise<void> | undefined;
  /** Where it listens (for logs and tests): `tcp://0.0.0.0:24224`, `unix:///run/…`. */
  address = '';
  /** The bound TCP port (useful with port 0). */
  port = 0;

  constructor(options: Options, deps: ComponentDeps) {
    const sec = options.security;
    if (sec) {
      const userAuth = sec.user_auth ?? sec.users.length > 0;
      if (userAuth && sec.users.length === 0)
        throw new Error(`${deps.id}: security.user_auth needs security.users`);
      if (!sec.allow_anonymous_source && sec.allow.length === 0)
        throw new Error(`${deps.id}: security.allow_anonymous_source false needs security.allow`);
      this.security = {
        selfHostname: sec.self_hostname,
        sharedKey: sec.shared_key,
        userAuth,
        users: sec.users,
      };
      this.allowList = new AllowList(sec.allow);
    }
    if (options.unix_path && options.tls) throw new Error(`${deps.id}: tls and unix_path cannot be combined`);
    this.id = deps.id;
    this.options = options;
    this.configDir = deps.configDir;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.labels = { plugin_id: deps.id, type: 'forward' };
    this.dedupe = new ChunkDedupe(options.dedupe_window);
    this.heartbeat = new Heartbeat(deps.logger);
    this.inflight = deps.inflight ?? new InflightBudget(Number.POSITIVE_INFINITY);
    this.context = this.makeContext();
  }

  async start(emit: Emit): Promise<void> {
    if (this.server) return;
    this.emitFn = emit;
    const o = this.options;
    const spec: Listen = o.unix_path
      ? {
          kind: 'unix',
          path: resolve(this.configDir, o.unix_path),
          ...(o.unix_perm ? { mode: o.unix_perm } : {}),
        }
      : {
          kind: 'tcp',
          host: o.listen,
          port: o.port,
          ...(o.tls ? { tls: await readServerTls(o.tls, this.configDir) } : {}),
        };
    const server = new ForwardServer(spec, o.connection_limit, this.hooks(), this.logger);
    this.server = server;
    try {
      const bound = await server.listen();
      this.address = bound.address;
      this.port = bound.port;
      if (spec.kind === 'tcp' && o.udp_heartbeat) await this.heartbeat.start(spec.host, bound.port);
    } catch (err) {
      // e.g. the port is taken: leave nothing half-open, so a later start can try again.
      this.server = undefined;
      await server.close();
      await this.heartbeat.stop();
      throw err;
    }
    this.listening = true;
    this.logger.info(
      {
        address: this.address,
        security: this.security ? (this.security.userAuth ? 'shared_key+users' : 'shared_key') : 'none',
        heartbeat: spec.kind === 'tcp' && o.udp_heartbeat,
      },
      'forward input listening',
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.listening = false;
      const closing = this.server?.close();
      await this.heartbeat.stop();
      for (const c of this.connections) c.drain();
      const all = Promise.all([...this.connections].map((c) => c.closed));
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((r) => {
        timer = setTimeout(r, STOP_GRACE_MS);
      });
      await Promise.race([all, grace]);
      clearTimeout(timer);
      for (const c of this.connections) c.destroy();
      await closing;
    })();
    return this.stopped;
  }

  ready(): boolean {
    return this.listening;
  }

  /** Open connections right now. */
  get connectionCount(): number {
    return this.connections.size;
  }

  private hooks() {
    const warnLimit = rateLimited(10_000, (suppressed) =>
      this.logger.warn(
        { connection_limit: this.options.connection_limit, suppressed },
        'forward connection refused: connection_limit reached',
      ),
    );
    const warnTls = rateLimited(10_000, (suppressed) =>
      this.logger.warn(
        { remote: lastTls.address, reason: lastTls.reason, suppressed },
        'forward TLS handshake failed',
      ),
    );
    const lastTls = { address: '', reason: '' };
    return {
      connection: (socket: Socket, peer: Peer) => {
        if (!this.listening) {
          socket.destroy();
          return;
        }
        if (this.options.send_keepalive_packet) socket.setKeepAlive(true, 60_000);
        const connection = new ForwardConnection(socket, peer, this.context);
        this.connections.add(connection);
        this.metrics.forwardConnections.inc(this.labels);
        this.logger.debug({ remote: peer.label }, 'forward connection opened');
        connection.start();
      },
      refusedOverLimit: () => {
        this.metrics.forwardConnectionsRefused.inc(this.labels);
        warnLimit();
      },
      tlsError: (err: Error, address: string | undefined) => {
        lastTls.address = address ?? '';
        lastTls.reason = err.message;
        warnTls();
      },
    };
  }

  private makeContext(): ConnectionContext {
    const o = this.options;
    const limits = { maxMessageSize: o.max_message_size, maxDepth: o.max_nesting_depth };
    const labels = this.labels;
    const prefix = o.add_tag_prefix;
    return {
      limits,
      maxDecompressedSize: o.max_decompressed_size ?? 4 * o.max_message_size,
      security: this.security,
      // Fluentd: a source in no `<client>` network is anonymous, refused unless allowed.
      sourceAllowed: (address) =>
        (o.security?.allow_anonymous_source ?? true) || (this.allowList?.allows(address) ?? false),
      keepalive: o.keepalive,
      idleTimeoutMs: o.idle_timeout,
      maxConnectionAgeMs: o.max_connection_age,
      tagFor: prefix ? (tag) => `${prefix}.${tag}` : (tag) => tag,
      fieldsFor: (peer) => this.fieldsFor(peer),
      emit: (batch: Batch, options) => this.emitFn!(batch, options),
      inflight: this.inflight,
      dedupe: (key) => (this.dedupe.enabled ? this.dedupe.begin(key) : { state: 'new' }),
      dedupeDone: (key, ok) => {
        if (!this.dedupe.enabled) return;
        if (ok) this.dedupe.done(key);
        else this.dedupe.fail(key);
      },
      events: this.events(labels),
    };
  }

  private readonly hostnames = new Map<string, Promise<string>>();

  /** Fluentd's source_address_key / source_hostname_key; a name is resolved once per address. */
  private async fieldsFor(peer: Peer): Promise<readonly (readonly [string, string])[] | undefined> {
    const { source_address_key: addressKey, source_hostname_key: hostKey } = this.options;
    if ((!addressKey && !hostKey) || peer.address === '') return undefined;
    const fields: [string, string][] = [];
    if (addressKey) fields.push([addressKey, peer.address]);
    if (hostKey) {
      let name = this.hostnames.get(peer.address);
      if (!name) {
        if (this.hostnames.size >= 10_000) this.hostnames.clear();
        name = reverseLookup(peer.address);
        this.hostnames.set(peer.address, name);
      }
      fields.push([hostKey, await name]);
    }
    return fields;
  }

  private events(labels: { plugin_id: string; type: string }): ConnectionEvents {
    const m = this.metrics;
    const log = this.logger;
    let lastBad = { remote: '', reason: '', error: '' };
    const warnBad = rateLimited(1000, (suppressed) =>
      log.warn({ ...lastBad, suppressed }, 'forward frame refused; connection closed'),
    );
    const warnedSignals = new Set<number>();
    let lastSize = {};
    const warnSize = rateLimited(60_000, (suppressed) =>
      log.warn(
        { ...lastSize, suppressed },
        'forward option.size does not match the entries sent; records kept',
      ),
    );
    const ok = { ...labels, result: 'ok' };
    // Bound once: a metric called with its labels hashes them on every call, and Message
    // mode calls these for every record.
    const inputBytes = m.inputBytes.labels(labels);
    const inputRecords = m.inputRecords.labels(labels);
    const requestsOk = m.inputRequests.labels(ok);
    const ackLatency = m.ackLatency.labels(labels);
    return {
      bytes: (count) => inputBytes.inc(count),
      accepted: (records, seconds, messages = 1) => {
        if (records > 0) inputRecords.inc(records);
        requestsOk.inc(messages);
        // One observation per message, as each waited this long for its ack.
        for (let i = 0; i < messages; i++) ackLatency.observe(seconds);
      },
      duplicate: (peer, tag) => {
        m.forwardDuplicateChunks.inc(labels);
        m.inputRequests.inc(ok);
        log.debug({ remote: peer.label, tag }, 'forward chunk already buffered; acked again');
      },
      signalDropped: (signal, peer, tag) => {
        const name = signal === 1 ? 'metrics' : 'traces';
        m.recordsDropped.inc({ ...labels, reason: `unsupported_signal_${name}` });
        m.inputRequests.inc(ok);
        if (warnedSignals.has(signal)) return;
        warnedSignals.add(signal);
        log.warn(
          { remote: peer.label, tag, fluent_signal: signal },
          `forward: Fluent Bit ${name} are not supported; they are acked and dropped (counted in estuary_records_dropped_total)`,
        );
      },
      sizeMismatch: (peer, tag, declared, stream: EntryStream) => {
        lastSize = { remote: peer.label, tag, size: declared, entries: stream.items, kept: stream.count };
        warnSize();
      },
      badFrame: (err: FrameError, peer) => {
        m.forwardBadFrames.inc({ ...labels, reason: err.reason });
        m.inputRequests.inc({
          ...labels,
          result: err.reason === 'too_large' ? 'too_large' : 'bad_request',
        });
        lastBad = { remote: peer.label, reason: err.reason, error: err.message };
        warnBad();
      },
      refused: (peer, reason) => {
        m.inputRequests.inc({ ...labels, result: 'unauthorized' });
        log.warn({ remote: peer.label, reason }, 'forward handshake refused; connection closed');
      },
      emitFailed: (err, peer, tag, messages = 1) => {
        const backpressure = err instanceof BackpressureError;
        if (messages > 0)
          m.inputRequests.inc({ ...labels, result: backpressure ? 'backpressure' : 'error' }, messages);
        log[backpressure ? 'debug' : 'warn'](
          { remote: peer.label, tag, messages, err: errorMessage(err) },
          'forward message not buffered; not acked, connection closed',
        );
      },
      closed: (connection) => {
        if (this.connections.delete(connection)) m.forwardConnections.dec(labels);
        log.debug({ remote: connection.peer.label }, 'forward connection closed');
      },
    };
  }
}

/** The peer's name from the system resolver (hosts file, DNS), or its address; never slow. */
async function reverseLookup(address: string): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((r) => {
    timer = setTimeout(() => r(address), 3000);
    timer.unref();
  });
  try {
    return await Promise.race([lookupService(address, 0).then((r) => r.hostname), timeout]);
  } catch {
    return address;
  } finally {
    clearTimeout(timer);
  }
}
