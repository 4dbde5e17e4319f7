/**
 * The run-time side of the plugin API: the `api` object a plugin module gets, and its
 * definitions turned into ordinary Factories, so that the config loader, the registry and
 * the app treat plugin types exactly as built-ins (same validation, lifecycle, buffer).
 */
import { z } from 'zod';
import { bufferOverridesSchema } from '../config/schema.ts';
import { duration, port, size } from '../config/values.ts';
import { makeBatch } from '../core/batch.ts';
import { isLogRecord } from '../core/entry.ts';
import {
  BackpressureError,
  errorMessage,
  HaltError,
  InputError,
  parseRetryAfter,
  RejectError,
  RetryableError,
} from '../core/errors.ts';
import { EventTime } from '../core/event-time.ts';
import { toJson } from '../core/to-json.ts';
import type { Filter } from '../filters/filter.ts';
import type { Input } from '../inputs/input.ts';
import { formatChunk } from '../outputs/format.ts';
import type { Output } from '../outputs/output.ts';
import { type ComponentDeps, defineComponent, type Factory, type Kind } from '../registry.ts';
import { version } from '../version.ts';
import type {
  EncodedChunk,
  Entry,
  FilterDefinition,
  InputDefinition,
  OutputDefinition,
  PluginApi,
  PluginContext,
  PluginEmit,
  PluginEmitOptions,
} from './api.ts';
import { pluginMetrics } from './metrics.ts';

const identity = <T>(definition: T): T => definition;

export const pluginApi: PluginApi = Object.freeze({
  version: version(),
  z,
  schemas: Object.freeze({ duration, size, port }),
  RetryableError,
  RejectError,
  HaltError,
  BackpressureError,
  EventTime,
  parseRetryAfter,
  toJsonLines(chunk, options = {}) {
    const { bytes, rejected } = formatChunk(options.format ?? 'json', chunk);
    return { bytes, rejected, count: chunk.count - rejected.length };
  },
  toJsonArray(chunk, options = {}): EncodedChunk {
    const format = options.format ?? 'json';
    if (format === 'fluentd')
      throw new TypeError('toJsonArray: fluentd lines are not JSON; use json or record');
    const { bytes: lines, rejected } = formatChunk(format, chunk);
    // A JSON line holds no raw newline (strings escape it): every \n ends an element.
    const bytes = Buffer.allocUnsafe(Math.max(2, lines.length + 1));
    bytes[0] = 0x5b; // [
    lines.copy(bytes, 1);
    for (let i = 1; i < lines.length; i++) if (bytes[i] === 0x0a) bytes[i] = 0x2c; // ,
    bytes[bytes.length - 1] = 0x5d; // ]
    return { bytes, rejected, count: chunk.count - rejected.length };
  },
  toJson,
  defineInput: identity,
  defineFilter: identity,
  defineOutput: identity,
} satisfies PluginApi);

type Definition = InputDefinition | FilterDefinition | OutputDefinition;
const SECTIONS = { input: 'inputs', filter: 'filters', output: 'outputs' } as const;

/**
 * The factories of a plugin's definitions, `origin` (its `plugins:` entry) recorded on each.
 * Throws, naming the origin and the definition, for a definition Estuary cannot use.
 */
export function pluginFactories(definitions: unknown, origin: string): Factory[] {
  if (typeof definitions !== 'object' || definitions === null)
    throw new Error(
      `${origin}: the default export returned ${describe(definitions)}, expected { inputs, filters, outputs }`,
    );
  const defs = definitions as Record<string, unknown>;
  const unknownKeys = Object.keys(defs).filter((k) => !Object.values(SECTIONS).includes(k as never));
  if (unknownKeys.length)
    throw new Error(`${origin}: unknown key ${unknownKeys.join(', ')} (expected inputs, filters, outputs)`);
  const factories: Factory[] = [];
  for (const kind of ['input', 'filter', 'output'] as const) {
    const list = defs[SECTIONS[kind]];
    if (list === undefined) continue;
    if (!Array.isArray(list))
      throw new Error(`${origin}: ${SECTIONS[kind]} is ${describe(list)}, expected a list`);
    list.forEach((item: unknown, index) => {
      const where = `${origin}: ${SECTIONS[kind]}[${index}]`;
      factories.push(factoryOf(kind, checkDefinition(item, where), origin, where));
    });
  }
  if (factories.length === 0) throw new Error(`${origin}: defines no input, filter or output`);
  return factories;
}

function checkDefinition(item: unknown, where: string): Definition {
  if (typeof item !== 'object' || item === null) throw new Error(`${where} is ${describe(item)}`);
  const d = item as Partial<Record<keyof OutputDefinition, unknown>>;
  if (typeof d.type !== 'string' || !/^[a-z][a-z0-9_]*$/.test(d.type))
    throw new Error(`${where}.type: expected a snake_case name, got ${describe(d.type)}`);
  if (!(d.schema instanceof z.ZodObject))
    throw new Error(
      `${where}.schema (${d.type}): expected an object schema made with api.z, got ${describe(d.schema)}`,
    );
  if (typeof d.create !== 'function') throw new Error(`${where}.create (${d.type}): expected a function`);
  return item as Definition;
}

function factoryOf(kind: Kind, def: Definition, origin: string, where: string): Factory {
  // A plain api.z.object() would drop a misspelt key without a word: plugin options are as
  // strict as built-ins' unless the plugin asked for others (a catchall, looseObject).
  const schema = def.schema._zod.def.catchall === undefined ? def.schema.strict() : def.schema;
  const base = { kind, type: def.type, schema, origin };
  switch (kind) {
    case 'input':
      return defineComponent({
        ...base,
        kind,
        create: (c, deps) => pluginInput(def as InputDefinition, c, deps),
      });
    case 'filter':
      return defineComponent({
        ...base,
        kind,
        create: (c, deps) => pluginFilter(def as FilterDefinition, c, deps),
      });
    case 'output': {
      const { bufferDefaults } = def as OutputDefinition;
      const parsed = bufferOverridesSchema.optional().safeParse(bufferDefaults);
      if (!parsed.success)
        throw new Error(
          `${where}.bufferDefaults (${def.type}): ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`,
        );
      return defineComponent({
        ...base,
        kind,
        bufferDefaults: parsed.data,
        create: (c, deps) => pluginOutput(def as OutputDefinition, c, deps),
      });
    }
  }
}

/** The instance, built by the plugin; its failure is reported with the instance's id. */
function build<T>(kind: Kind, def: Definition, config: Record<string, unknown>, deps: ComponentDeps): T {
  const ctx: PluginContext = {
    id: deps.id,
    type: def.type,
    config,
    logger: deps.logger,
    metrics: pluginMetrics(deps.metrics.registry, deps.id),
    configDir: deps.configDir,
  };
  let made: unknown;
  try {
    made = def.create(config, ctx);
  } catch (err) {
    throw new Error(`${kind} "${deps.id}" (plugin type ${def.type}): create failed: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const needs = kind === 'filter' ? 'apply' : kind === 'output' ? 'write' : 'start';
  if (
    typeof made !== 'object' ||
    made === null ||
    typeof (made as Record<string, unknown>)[needs] !== 'function'
  )
    throw new Error(`${kind} "${deps.id}" (plugin type ${def.type}): create returned no ${needs}() method`);
  return made as T;
}

/** A failed start stops startup; the message says which instance. */
async function started(kind: Kind, id: string, type: string, start: () => unknown): Promise<void> {
  try {
    await start();
  } catch (err) {
    throw new Error(`${kind} "${id}" (plugin type ${type}) failed to start: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

function pluginInput(def: InputDefinition, config: Record<string, unknown>, deps: ComponentDeps): Input {
  const plugin = build<ReturnType<InputDefinition['create']>>('input', def, config, deps);
  const labels = { plugin_id: deps.id, type: def.type };
  return {
    id: deps.id,
    type: def.type,
    start(emit) {
      // Counted as built-in inputs count: records once durable, and the time to that moment.
      const send = async (tag: string, entries: readonly Entry[], options: PluginEmitOptions = {}) => {
        if (entries.length === 0) return;
        for (const e of entries)
          if (!isLogRecord(e.record) || !(e.time instanceof EventTime))
            throw new InputError('emit: each record must be a map, each entry { time: EventTime, record }');
        const at = performance.now();
        const batch = makeBatch(tag, entries);
        await emit(batch, { wait: options.wait ?? true });
        deps.metrics.inputRecords.inc(labels, batch.count);
        deps.metrics.ackLatency.observe(labels, (performance.now() - at) / 1000);
      };
      const pluginEmit: PluginEmit = Object.assign(
        (tag: string, records: readonly Record<string, unknown>[], options?: PluginEmitOptions) => {
          const time = EventTime.now();
          return send(
            tag,
            records.map((record) => ({ time, record })),
            options,
          );
        },
        { entries: send },
      );
      return started('input', deps.id, def.type, () => plugin.start(pluginEmit));
    },
    stop: async () => {
      await plugin.stop?.();
    },
    ready: () => plugin.ready?.() ?? true,
  };
}

function pluginFilter(def: FilterDefinition, config: Record<string, unknown>, deps: ComponentDeps): Filter {
  const plugin = build<ReturnType<FilterDefinition['create']>>('filter', def, config, deps);
  return {
    id: deps.id,
    type: def.type,
    // What a plugin returns is checked: anything but null, a list of emissions or an entry is
    // a bug of the plugin's, which the pipeline then counts and passes the record on from.
    apply: (entry, tag) => {
      const result = plugin.apply(entry, tag);
      if (result === null || Array.isArray(result) || isEntry(result)) return result;
      throw new TypeError(
        `${deps.id}: apply returned ${describe(result)}; expected the entry, null or a list of { entry, tag? }`,
      );
    },
    ...(plugin.start && { start: plugin.start.bind(plugin) }),
    ...(plugin.stop && { stop: plugin.stop.bind(plugin) }),
  };
}

function pluginOutput(def: OutputDefinition, config: Record<string, unknown>, deps: ComponentDeps): Output {
  const plugin = build<ReturnType<OutputDefinition['create']>>('output', def, config, deps);
  return {
    id: deps.id,
    type: def.type,
    start: () => started('output', deps.id, def.type, () => plugin.start?.()),
    write: async (chunk, options) => (await plugin.write(chunk, options)) ?? undefined,
    stop: async () => {
      await plugin.stop?.();
    },
    reopen: async () => {
      await plugin.reopen?.();
    },
  };
}

function isEntry(value: unknown): value is Entry {
  const entry = value as Partial<Entry> | undefined;
  return (
    typeof entry === 'object' &&
    entry !== null &&
    entry.time instanceof EventTime &&
    isLogRecord(entry.record)
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object') return 'an object';
  return value === undefined ? 'nothing' : `${typeof value} ${JSON.stringify(value)}`;
}
