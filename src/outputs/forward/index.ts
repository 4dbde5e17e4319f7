import { RejectError, RetryableError } from '../../core/errors.ts';
import type { Logger } from '../../logger.ts';
import type { ClientCredentials } from '../../protocol/forward/handshake.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import type { Chunk, Output } from '../output.ts';
import { ForwardConnection, label } from './client.ts';
import { type ForwardOutputConfig, type ForwardServer, forwardOutputSchema } from './config.ts';
import { chunkIdFor, packBatch } from './encode.ts';

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
}

/**
 * Aggregator → aggregator: each chunk goes to one receiver as PackedForward messages (one
 * per tag run), acked per message. Receivers are chosen by weight among healthy primaries,
 * standbys only when every primary is down. Failures are RetryableErrors; the buffer retries.
 */
export class ForwardOutput implements Output {
  readonly id: string;
  readonly type = 'forward';
  private readonly config: ForwardOutputConfig;
  private readonly deps: ComponentDeps;
  private readonly logger: Logger;
  private readonly servers: ServerState[];
  private readonly credentials: ClientCredentials | undefined;

  constructor(config: ForwardOutputConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.config = config;
    this.deps = deps;
    this.logger = deps.logger;
    this.servers = config.servers.map((s) => ({ config: s, connection: undefined, downUntil: 0 }));
    const security = config.security;
    this.credentials = security && {
      hostname: security.self_hostname,
      sharedKey: security.shared_key,
      username: security.username,
      password: security.password,
    };
  }

  async write(chunk: Chunk): Promise<undefined> {
    const server = this.pick();
    let connection: ForwardConnection;
    try {
      connection = await this.connectionTo(server);
      const sends = chunk.batches.map((batch, i) =>
        connection.send(
          packBatch(batch, this.config.require_ack_response ? chunkIdFor(chunk.id, i) : undefined, {
            compress: this.config.compress,
            timeAsInteger: this.config.time_as_integer,
          }),
        ),
      );
      await Promise.all(sends);
    } catch (err) {
      this.markDown(server, err);
      if (err instanceof RetryableError || err instanceof RejectError) throw err;
      throw new RetryableError(String(err), { cause: err });
    }
    const expired =
      this.config.keepalive_timeout !== undefined &&
      Date.now() - connection.openedAt > this.config.keepalive_timeout;
    if (!this.config.keepalive || expired) this.drop(server);
    return undefined;
  }

  async stop(): Promise<void> {
    for (const s of this.servers) this.drop(s);
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

  private async connectionTo(server: ServerState): Promise<ForwardConnection> {
    if (server.connection?.alive) return server.connection;
    server.connection = await ForwardConnection.open(
      server.config,
      this.config,
      this.deps.configDir,
      this.credentials,
    );
    this.logger.debug({ server: label(server.config) }, 'forward connection opened');
    return server.connection;
  }

  private markDown(server: ServerState, err: unknown): void {
    this.drop(server);
    server.downUntil = Date.now() + this.config.recover_wait;
    this.logger.warn(
      { server: label(server.config), retry_in_ms: this.config.recover_wait, err: (err as Error).message },
      'forward server failed; trying others',
    );
  }

  private drop(server: ServerState): void {
    server.connection?.close();
    server.connection = undefined;
  }
}
