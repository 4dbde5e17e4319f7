/**
 * The test kit for plugin authors (`estuary/plugin/testkit`): build a plugin's component as
 * `estuary run` builds it (options through its schema), feed it records, look at what it
 * answers — and run the output conformance suite Estuary runs on its own outputs.
 *
 *     import { buildOutput, outputConformance } from 'estuary/plugin/testkit';
 *     const out = await buildOutput(plugin, 'webhook', { url });
 *     assert.equal((await out.write([{ msg: 'hi' }])).kind, 'ok');
 */
import { describe } from 'node:test';
import { z } from 'zod';
import { makeChunk } from '../buffer/chunk.ts';
import { type Batch, decodeEntries, makeBatch } from '../core/batch.ts';
import type { Entry, LogRecord } from '../core/entry.ts';
import { HaltError, RejectError, RetryableError } from '../core/errors.ts';
import { EventTime } from '../core/event-time.ts';
import type { EmitOptions, Input } from '../inputs/input.ts';
import { type Logger, silentLogger } from '../logger.ts';
import { Metrics } from '../metrics/registry.ts';
import type { Chunk, Output, WriteResult } from '../outputs/output.ts';
import type { ComponentDeps, Factory, Kind } from '../registry.ts';
import type { Plugin } from './api.ts';
import { type Built, type CaseNotes, failOnUnhandledRejections, outputCases } from './conformance.ts';
import { pluginApi, pluginFactories } from './host.ts';
import { PLUGIN_METRIC_PREFIX } from './metrics.ts';
import { type Reply, ScriptedHttpSink, type SeenRequest, SilentServer } from './testing.ts';

export { chunkOf, httpStatus } from './conformance.ts';
export {
  freePort,
  type Reply,
  ScriptedHttpSink,
  type SeenRequest,
  settlesWithin,
  waitFor,
} from './testing.ts';

export interface BuildOptions {
  /** The instance's id (default `<type>.test`). */
  id?: string;
  /** What relative paths in the options resolve against (default the working directory). */
  configDir?: string;
  logger?: Logger;
}

/** A chunk as the buffer hands it to an output: records (stamped now) or entries, under one tag. */
export function makeTestChunk(
  records: readonly LogRecord[] | readonly Entry[],
  { tag = 'test', id = 'test-chunk', attempt = 0 }: { tag?: string; id?: string; attempt?: number } = {},
): Chunk {
  const time = EventTime.now();
  const entries = records.map((r) =>
    r.time instanceof EventTime && typeof r.record === 'object' && r.record !== null
      ? (r as Entry)
      : { time, record: r as LogRecord },
  );
  return makeChunk(id, [makeBatch(tag, entries)], attempt);
}

/** How the sink driver takes a write: delivered, or one of the three failures. */
export type WriteOutcome =
  | { kind: 'ok'; result: WriteResult | undefined }
  | {
      kind: 'retry';
      error: Error;
      retryAfterMs: number | undefined /** not a RetryableError: the driver retries any other error */;
      unclassified: boolean;
    }
  | { kind: 'reject'; error: Error }
  | { kind: 'halt'; error: Error };

export function classify(error: unknown): Exclude<WriteOutcome, { kind: 'ok' }> {
  const err = error instanceof Error ? error : new Error(String(error));
  if (err instanceof RejectError) return { kind: 'reject', error: err };
  if (err instanceof HaltError) return { kind: 'halt', error: err };
  const retryable = err instanceof RetryableError;
  return {
    kind: 'retry',
    error: err,
    retryAfterMs: retryable ? err.retryAfterMs : undefined,
    unclassified: !retryable,
  };
}

interface Instance<C> {
  component: C;
  /** Prometheus text of the metrics the instance registered. */
  metrics(): Promise<string>;
}

/** The `estuary_plugin_*` metrics of a registry, as /metrics shows them. */
async function pluginMetricsText(metrics: Metrics): Promise<string> {
  const names = metrics.registry
    .getMetricsAsArray()
    .map((m) => m.name)
    .filter((name) => name.startsWith(PLUGIN_METRIC_PREFIX));
  const texts = await Promise.all(names.map((name) => metrics.registry.getSingleMetricAsString(name)));
  return texts.map((t) => `${t}\n`).join('');
}

/** The plugin's factory of `kind` and `type`, the options validated, the instance created. */
async function build<K extends Kind>(
  plugin: Plugin,
  kind: K,
  type: string,
  options: Record<string, unknown>,
  settings: BuildOptions,
): Promise<Instance<ReturnType<Factory<K>['create']>>> {
  const factory = pluginFactories(await plugin(pluginApi), 'plugin under test').find(
    (f): f is Factory<K> => f.kind === kind && f.type === type,
  );
  if (!factory) throw new Error(`the plugin defines no ${kind} of type "${type}"`);
  const parsed = factory.schema.safeParse(options);
  if (!parsed.success) throw new Error(`options of ${type}: ${z.prettifyError(parsed.error)}`);
  const metrics = new Metrics();
  const deps: ComponentDeps = {
    id: settings.id ?? `${type}.test`,
    logger: (settings.logger ?? silentLogger()).child({ plugin_id: settings.id ?? `${type}.test` }),
    metrics,
    configDir: settings.configDir ?? process.cwd(),
  };
  return { component: factory.create(parsed.data, deps), metrics: () => pluginMetricsText(metrics) };
}

export interface OutputUnderTest {
  output: Output;
  /** Writes the records (or a chunk) with no deadline unless `signal` is given; never throws. */
  write(
    records: Chunk | readonly LogRecord[] | readonly Entry[],
    options?: { tag?: string; signal?: AbortSignal },
  ): Promise<WriteOutcome>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** A plugin's output, options checked by its schema, started (`start: false` to leave that to you). */
export async function buildOutput(
  plugin: Plugin,
  type: string,
  options: Record<string, unknown>,
  settings: BuildOptions & { start?: boolean } = {},
): Promise<OutputUnderTest> {
  const { component: output, metrics } = await build(plugin, 'output', type, options, settings);
  if (settings.start !== false) await output.start?.();
  return {
    output,
    metrics,
    async write(records, { tag, signal = new AbortController().signal } = {}) {
      const chunk = 'batches' in records ? records : makeTestChunk(records, { tag });
      try {
        return { kind: 'ok', result: await output.write(chunk, { signal }) };
      } catch (err) {
        return classify(err);
      }
    },
    stop: async () => output.stop?.(),
  };
}

export interface Emitted {
  tag: string;
  records: LogRecord[];
  entries: Entry[];
  options: EmitOptions;
}

export interface InputUnderTest {
  input: Input;
  /** What the input emitted and was acknowledged for, in order. */
  emitted: Emitted[];
  /**
   * What the next emits do: 'ok' (durable at once), 'hold' (pending until `release()`), or
   * an error to fail them with (e.g. api.BackpressureError).
   */
  emitBehaviour: 'ok' | 'hold' | Error;
  /** Settles the emits held so far, as the buffer does once they are durable (or with `error`). */
  release(error?: Error): void;
  /** Emits waiting for `release()`. */
  readonly held: number;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** A plugin's input, started with an emit the test controls (Estuary's own emit promise semantics). */
export async function buildInput(
  plugin: Plugin,
  type: string,
  options: Record<string, unknown>,
  settings: BuildOptions = {},
): Promise<InputUnderTest> {
  const { component: input, metrics } = await build(plugin, 'input', type, options, settings);
  const waiting: { settle: (error?: Error) => void }[] = [];
  const harness: InputUnderTest = {
    input,
    emitted: [],
    emitBehaviour: 'ok',
    release(error) {
      for (const w of waiting.splice(0)) w.settle(error);
    },
    get held() {
      return waiting.length;
    },
    metrics,
    stop: () => input.stop(),
  };
  const record = (batch: Batch, options: EmitOptions) => {
    const entries = decodeEntries(batch.payload);
    harness.emitted.push({ tag: batch.tag, entries, records: entries.map((e) => e.record), options });
  };
  await input.start(async (batch, options) => {
    const behaviour = harness.emitBehaviour;
    if (behaviour instanceof Error) throw behaviour;
    if (behaviour === 'hold')
      await new Promise<void>((resolve, reject) =>
        waiting.push({ settle: (error) => (error ? reject(error) : resolve()) }),
      );
    record(batch, options);
  });
  return harness;
}

export interface OutputConformance {
  plugin: Plugin;
  type: string;
  /** Options pointing the output at the suite's HTTP sink `url`, giving up on a request after `requestTimeout` ('300ms'). */
  options(url: string, requestTimeout: string): Record<string, unknown>;
  /** The sink's answer when it takes a request (default 200 `{}`). */
  ok?(request: SeenRequest): Reply;
  /** Cases that do not apply, with why (e.g. `{ '413': 'one POST per chunk; size chunks below the limit' }`). */
  notApplicable?: CaseNotes;
  /** Cases not passed yet, with why (run as todo). */
  todo?: CaseNotes;
}

/**
 * Registers (node:test) the conformance cases Estuary's own HTTP outputs pass, for a plugin
 * output that sends to an HTTP endpoint: lifecycle, the write signal, a sink that never
 * answers, 401/403/404 halt, 500/503 retry, 429 with Retry-After, 413 splitting, timeouts.
 */
export function outputConformance(spec: OutputConformance): void {
  const ok =
    spec.ok ?? (() => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{}' }));
  const against = async (reply: (request: SeenRequest) => Reply, requestTimeout = '30s'): Promise<Built> => {
    const sink = await ScriptedHttpSink.start(reply);
    const { output } = await buildOutput(spec.plugin, spec.type, spec.options(sink.url, requestTimeout), {
      start: false,
    });
    return { output, close: () => sink.close() };
  };
  describe(`${spec.type} output conformance`, () => {
    failOnUnhandledRejections();
    outputCases({
      type: spec.type,
      healthy: () => against(ok),
      async stalled() {
        const silent = await SilentServer.start();
        const { output } = await buildOutput(spec.plugin, spec.type, spec.options(silent.url, '60s'), {
          start: false,
        });
        return { output, close: () => silent.stop(), reached: () => silent.accepted > 0 };
      },
      http: { against, ok },
      ...(spec.notApplicable && { notApplicable: spec.notApplicable }),
      ...(spec.todo && { todo: spec.todo }),
    });
  });
}
