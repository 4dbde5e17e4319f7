import type { BufferBackend, OutputBuffer } from './buffer/buffer.ts';
import { MemoryBackend } from './buffer/memory/memory-store.ts';
import type { EstuaryConfig } from './config/load.ts';
import { beforeDeadline } from './core/deadline.ts';
import { InflightBudget } from './core/inflight.ts';
import type { Input } from './inputs/input.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics/registry.ts';
import type { Output } from './outputs/output.ts';
import { Pipeline } from './pipeline.ts';
import type { ComponentDeps, ComponentRegistry } from './registry.ts';

export interface OutputStatusReport {
  id: string;
  type: string;
  buffer: ReturnType<OutputBuffer['stats']>;
}

export interface StatusReport {
  ready: boolean;
  buffer: { type: string; reachable: boolean };
  inputs: { id: string; type: string; ready: boolean }[];
  outputs: OutputStatusReport[];
}

interface Options {
  registry: ComponentRegistry;
  logger?: Logger;
  metrics?: Metrics;
  /** Tests pass their own; otherwise Estuary.create chooses it from service.buffer.type. */
  backend?: BufferBackend;
}

/**
 * The whole aggregator for one config. Start order: outputs, buffers, inputs (nothing is
 * accepted before it can be buffered); stop order is the reverse, with the buffers drained
 * before the outputs close.
 */
export class Estuary {
  readonly config: EstuaryConfig;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly inputs: readonly Input[];
  readonly outputs: readonly { output: Output; buffer: OutputBuffer }[];
  readonly pipeline: Pipeline;
  /** service.max_inflight_bytes: what all inputs together hold before the buffers have it. */
  readonly inflight: InflightBudget;
  private readonly backend: BufferBackend;
  private stopped: Promise<void> | undefined;

  /** Builds everything for `config`; the Redis client libraries are loaded only when it asks for them. */
  static async create(config: EstuaryConfig, options: Options): Promise<Estuary> {
    const logger = options.logger ?? createLogger(config.service.log_level);
    const backend = options.backend ?? (await createBackend(config, logger));
    return new Estuary(config, { ...options, logger, backend });
  }

  /** Synchronous: memory backend unless `options.backend` is given; use Estuary.create for redis. */
  constructor(config: EstuaryConfig, options: Options) {
    this.config = config;
    this.logger = options.logger ?? createLogger(config.service.log_level);
    if (!options.backend && config.service.buffer.type !== 'memory') {
      throw new Error(`buffer type ${config.service.buffer.type} needs Estuary.create()`);
    }
    this.backend = options.backend ?? memoryBackend(this.logger);
    this.metrics = options.metrics ?? new Metrics({ sharedBuffer: this.backend.shared });
    this.inflight = new InflightBudget(config.service.max_inflight_bytes);
    this.metrics.registerInflight(this.inflight);
    const deps = (id: string): ComponentDeps => ({
      id,
      logger: this.logger.child({ plugin_id: id }),
      metrics: this.metrics,
      configDir: config.dir,
      inflight: this.inflight,
    });
    const { registry } = options;
    this.inputs = config.inputs.map((c) => registry.get('input', c.type)!.create(c.options, deps(c.id)));
    const filters = config.filters.map((c) => ({
      match: c.match,
      filter: registry.get('filter', c.type)!.create(c.options, deps(c.id)),
    }));
    this.outputs = config.outputs.map((c) => {
      const output = registry.get('output', c.type)!.create(c.options, deps(c.id));
      const buffer = this.backend.create(output, c.buffer, {
        logger: deps(c.id).logger,
        metrics: this.metrics,
      });
      this.metrics.registerOutput(buffer);
      return { output, buffer };
    });
    this.pipeline = new Pipeline(
      filters,
      config.outputs.map((c, i) => ({ match: c.match, buffer: this.outputs[i]!.buffer })),
      this.metrics,
      this.logger,
    );
  }

  async start(): Promise<void> {
    for (const { output } of this.outputs) await withinStartup(output.id, output.start?.());
    for (const { buffer } of this.outputs) await buffer.start();
    this.pipeline.start();
    for (const input of this.inputs) await withinStartup(input.id, input.start(this.pipeline.emit));
    this.logger.info(
      {
        inputs: this.inputs.map((i) => i.id),
        outputs: this.outputs.map((o) => o.output.id),
        buffer: this.backend.type,
      },
      'estuary started',
    );
  }

  /** Stop accepting, drain buffers until service.shutdown_timeout, close outputs. Safe twice. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    const deadline = Date.now() + this.config.service.shutdown_timeout;
    // Each component's stop is bounded: one that hangs (a plugin's) must not keep the buffers
    // from draining; it is named in the log.
    const bounded = (id: string, work: Promise<unknown> | undefined) =>
      beforeDeadline(Promise.resolve(work), deadline).catch((err: unknown) =>
        this.logger.error({ plugin_id: id, err }, 'stop did not finish by the shutdown deadline'),
      );
    await Promise.all(this.inputs.map((i) => bounded(i.id, i.stop())));
    // What filters hold (a group waiting for its last line) is buffered before the buffers stop.
    await beforeDeadline(this.pipeline.stop(), deadline).catch(() =>
      this.logger.warn('filters still held records at the shutdown deadline; those are lost'),
    );
    await Promise.allSettled(this.outputs.map(({ buffer }) => buffer.stop(deadline)));
    await Promise.all(this.outputs.map(({ output }) => bounded(output.id, output.stop?.())));
    await this.backend.close();
    this.logger.info('estuary stopped');
  }

  /** SIGHUP: outputs reopen their files. */
  async reopen(): Promise<void> {
    await Promise.allSettled(this.outputs.map(({ output }) => output.reopen?.()));
    this.logger.info('files reopened');
  }

  ready(): boolean {
    return this.backend.ready() && this.inputs.every((i) => i.ready());
  }

  buffer(outputId: string): OutputBuffer | undefined {
    return this.outputs.find((o) => o.output.id === outputId)?.buffer;
  }

  status(): StatusReport {
    return {
      ready: this.ready(),
      buffer: { type: this.backend.type, reachable: this.backend.ready() },
      inputs: this.inputs.map((i) => ({ id: i.id, type: i.type, ready: i.ready() })),
      outputs: this.outputs.map(({ output, buffer }) => ({
        id: output.id,
        type: output.type,
        buffer: buffer.stats(),
      })),
    };
  }
}

function memoryBackend(logger: Logger): BufferBackend {
  logger.warn(
    'buffer type memory: records not yet delivered are lost if this process dies (use service.buffer.type redis)',
  );
  return new MemoryBackend();
}

async function createBackend(config: EstuaryConfig, logger: Logger): Promise<BufferBackend> {
  if (config.service.buffer.type === 'memory') return memoryBackend(logger);
  const backend = await openRedisBackend(config, logger.child({ plugin_id: 'buffer' }));
  logger.info(
    {
      replica: backend.replica,
      prefix: backend.settings.prefix,
      wait_replicas: backend.settings.waitReplicas,
    },
    'buffer type redis: durable and shared by every replica (run Redis with appendonly yes)',
  );
  return backend;
}

/** ioredis and the redis store are loaded only by configs that use them. */
export async function openRedisBackend(config: EstuaryConfig, logger: Logger) {
  const [{ RedisBackend }, { redisSettings }] = await Promise.all([
    import('./buffer/redis/redis-store.ts'),
    import('./buffer/redis/connection.ts'),
  ]);
  return new RedisBackend(redisSettings(config.service.buffer, config.dir), logger);
}

/** A component's start has this long: one that never finishes (a plugin's) stops startup, named. */
const START_TIMEOUT_MS = 60_000;

async function withinStartup(id: string, work: Promise<void> | undefined): Promise<void> {
  try {
    await beforeDeadline(Promise.resolve(work), Date.now() + START_TIMEOUT_MS);
  } catch (err) {
    if (err instanceof Error && err.message === 'deadline passed')
      throw new Error(`${id}: start did not finish in ${START_TIMEOUT_MS / 1000}s`);
    throw err;
  }
}
