import { tagRuns } from '../../buffer/chunk.ts';
import { readClientTls } from '../../config/values.ts';
import { errorMessage, HaltError, isWriteError, RetryableError, type WriteError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../output.ts';
import { type DialSettings, ForwardConnection, label } from './client.ts';
import { type ForwardOutputConfig, type ForwardServer, forwardOutputSchema } from './config.ts';
import { chunkIdFor, packRun } from './encode.ts';

export const forwardOutput = defineComponent({
  kind: 'output',
  type: 'forward',
  schema: forwardOutputSchema,
  create: (config, deps) => new ForwardOutput(config, deps),
});

interface ServerState {
  config: ForwardServer;
  connection: ForwardConnection | undefined;
  /** Skipped until then after a failure. */
  downUntil: number;
  /** Its last failure refused us for good (handshake, certificate, unknown host). */
  halted: boolean;
}

/**
 * Aggregator → aggregator: each chunk goes to one receiver as PackedForward messages (one
 * per tag run), acked per message. Receivers are chosen by weight among healthy primaries,
 * standbys only when every primary is down. Network failures and timeouts are retried; a
 * refused handshake, an unverifiable certificate or an unknown host halts the output once no
 * other receiver is left to try.
 */
export class ForwardOutput implements Output {
  readonly id: string;
  readonly type = 'forward';
  private readonly config: ForwardOutputConfig;
  private readonly deps: ComponentDeps;
  private readonly logger: Logger;
  private readonly servers: ServerState[];
  /** Read once (TLS files): a missing file is a startup error, not a retry per write. */
  private settings: Promise<DialSettings> | undefined;
  private stopped = false;

  constructor(config: ForwardOutputConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger;
    this.servers = config.servers.map((s) => ({
      config: s,
      connection: undefined,
      downUntil: 0,
      halted: false,
    }));
  }

  /** Reads the TLS files; contacts no receiver, so Estuary starts (and buffers) while they are down. */
  async start(): Promise<void> {
    await this.dialSettings();
    this.stopped = false;
  }

  async write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const { signal } = options;
    // Stopped: connecting now would leave a socket open that nothing closes.
    if (this.stopped) throw new RetryableError(`${this.id}: output stopped`);
    if (signal.aborted) throw abortError(signal, this.id);
    const settings = await this.dialSettings();
    // Encoded before a receiver is picked: a record that cannot be encoded is not the receiver's fault.
    const packed = await Promise.all(
      tagRuns(chunk.batches).map((run, i) =>
        packRun(run, this.config.require_ack_response ? chunkIdFor(chunk.id, i) : undefined, {
          compress: this.config.compress,
          timeAsInteger: this.config.time_as_integer,
        }),
      ),
    );
    const rejected = packed.flatMap((m) => m.rejected ?? []);
    const result = rejected.length > 0 ? { reject: rejected } : undefined;
    const messages = packed.filter((m) => m.count > 0);
    if (messages.length === 0) return result;
    const server = this.pick();
    let connection: ForwardConnection;
    try {
      connection = await this.connectionTo(server, settings, signal);
      const open = connection;
      const sends = messages.map((m) => open.send(m));
      // An abandoned wait closes the connection: a late ack must not count for a chunk
      // that is retried, and a receiver that stopped answering gets a fresh connection.
      await untilAborted(Promise.all(sends), signal, label(server.config), () =>
        open.close('write abandoned'),
      );
    } catch (err) {
      this.markDown(server, err);
      throw this.verdict(server, err);
    }
    server.halted = false;
    const expired =
      this.config.keepalive_timeout !== undefined &&
      Date.now() - connection.openedAt > this.config.keepalive_timeout;
    if (!this.config.keepalive || expired) this.drop(server);
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.servers) this.drop(s);
  }

  /** Built once; a failure is not kept, so a probe after the file is fixed reads it again. */
  private dialSettings(): Promise<DialSettings> {
    this.settings ??= readDialSettings(this.config, this.deps.configDir).catch((err: unknown) => {
      this.settings = undefined;
      throw err;
    });
    return this.settings;
  }

  /**
   * A halt from one receiver is the output's only when every other receiver refused us too:
   * until then the next try goes elsewhere, so it is a retry.
   */
  private verdict(server: ServerState, err: unknown): WriteError {
    const error = isWriteError(err)
      ? err
      : new RetryableError(`${label(server.config)}: ${errorMessage(err)}`, { cause: err });
    if (!(error instanceof HaltError)) return error;
    server.halted = true;
    const another = this.servers.some((s) => s !== server && !s.halted && s.config.weight > 0);
    return another
      ? new RetryableError(`${error.message}; the next try goes to another server`, { cause: error })
      : error;
  }

  private pick(): ServerState {
    const now = Date.now();
    const up = (standby: boolean) =>
      this.servers.filter((s) => s.config.standby === standby && s.downUntil <= now && s.config.weight > 0);
    const primaries = up(false);
    const candidates = primaries.length > 0 ? primaries : up(true);
    if (candidates.length === 0) {
      // Everything failed recently: try the one that failed longest ago; the buffer's backoff
      // sets the pace, so a lone receiver is retried as soon as the policy allows.
      return this.servers.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
    }
    let r = Math.random() * candidates.reduce((n, s) => n + s.config.weight, 0);
    for (const s of candidates) {
      r -= s.config.weight;
      if (r < 0) return s;
    }
    return candidates[candidates.length - 1]!;
  }

  private async connectionTo(
    server: ServerState,
    settings: DialSettings,
    signal: AbortSignal,
  ): Promise<ForwardConnection> {
    if (server.connection?.alive) return server.connection;
    server.connection = await ForwardConnection.open(server.config, settings, signal);
    this.logger.debug({ server: label(server.config) }, 'forward connection opened');
    return server.connection;
  }

  private markDown(server: ServerState, err: unknown): void {
    this.drop(server);
    server.downUntil = Date.now() + this.config.recover_wait;
    this.logger.warn(
      { server: label(server.config), retry_in_ms: this.config.recover_wait, err: errorMessage(err) },
      'forward server failed; trying others',
    );
  }

  private drop(server: ServerState): void {
    server.connection?.close();
    server.connection = undefined;
  }
}

async function readDialSettings(config: ForwardOutputConfig, configDir: string): Promise<DialSettings> {
  const { tls, security } = config;
  return {
    connectTimeoutMs: config.connect_timeout,
    ackTimeoutMs: config.ack_response_timeout,
    tls: tls && {
      ...readClientTls(tls, configDir),
      ...(tls.server_name === undefined ? {} : { servername: tls.server_name }),
    },
    credentials: security && {
      hostname: security.self_hostname,
      sharedKey: security.shared_key,
      username: security.username,
      password: security.password,
    },
  };
}
