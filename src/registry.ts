import type { z } from 'zod';
import type { BufferOverrides } from './config/schema.ts';
import type { InflightBudget } from './core/inflight.ts';
import type { Filter } from './filters/filter.ts';
import type { Input } from './inputs/input.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics/registry.ts';
import type { Output } from './outputs/output.ts';

/** What every component is built with. */
export interface ComponentDeps {
  /** The component's `id` (default `<type>.<index>`), on every log line and metric. */
  id: string;
  logger: Logger;
  metrics: Metrics;
  /** Directory of the config file, for resolving relative paths. */
  configDir: string;
  /**
   * The process's `service.max_inflight_bytes`, shared by every input. Absent when a
   * component is built on its own (tests): inputs then hold without a bound.
   */
  inflight?: InflightBudget;
}

interface Kinds {
  input: Input;
  filter: Filter;
  output: Output;
}
export type Kind = keyof Kinds;

/**
 * A component type: its options schema (strict; defaults and descriptions live there) and
 * how to build one. Common keys (`type`, `id`, `match`, `buffer`) are added by the loader.
 */
export interface Factory<K extends Kind = Kind> {
  readonly kind: K;
  readonly type: string;
  readonly schema: z.ZodObject;
  /** Outputs: buffer settings this type defaults to, under `service.buffer` and the output's own. */
  readonly bufferDefaults?: BufferOverrides;
  /** Where a plugin's type came from (its `plugins:` entry); absent for a built-in. */
  readonly origin?: string;
  create(config: unknown, deps: ComponentDeps): Kinds[K];
}

export function defineComponent<K extends Kind, S extends z.ZodObject>(spec: {
  kind: K;
  type: string;
  schema: S;
  bufferDefaults?: BufferOverrides;
  origin?: string;
  create(config: z.output<S>, deps: ComponentDeps): Kinds[K];
}): Factory<K> {
  // The loader validated the config with this very schema before calling create.
  return { ...spec, create: (config, deps) => spec.create(config as z.output<S>, deps) };
}

export class ComponentRegistry {
  private readonly factories = new Map<string, Factory>();

  register(...factories: Factory[]): this {
    for (const f of factories) this.factories.set(`${f.kind}:${f.type}`, f);
    return this;
  }

  get<K extends Kind>(kind: K, type: string): Factory<K> | undefined {
    return this.factories.get(`${kind}:${type}`) as Factory<K> | undefined;
  }

  types(kind: Kind): string[] {
    return this.all(kind).map((f) => f.type);
  }

  all<K extends Kind>(kind: K): Factory<K>[] {
    return [...this.factories.values()].filter((f): f is Factory<K> => f.kind === kind);
  }

  /** Another registry with the same types: plugins of one config are added to it, not to the built-ins'. */
  copy(): ComponentRegistry {
    return new ComponentRegistry().register(...this.factories.values());
  }
}
