import cluster, { type Worker } from 'node:cluster';
import { type Aggregator, AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { EstuaryConfig } from '../config/load.ts';
import type { Logger } from '../logger.ts';
import { type MetricSnapshot, registerProcessMetrics } from '../metrics/registry.ts';
import { AdminServer, type AdminTarget, type Readiness } from '../server/admin.ts';
import type { DeadLetterApi, DescribedDeadLetter, DescribedWithEntries } from '../server/dead-letter.ts';
import { isWorkerMessage, type WorkerMessage, type WorkerRequest } from './ipc.ts';

export interface SuperviseOptions {
  /** The module a worker runs (the CLI) and its arguments; each worker reads the config itself. */
  exec: string;
  args: string[];
}

/** How long the admin server waits for a worker's answer before leaving it out. */
const REQUEST_TIMEOUT_MS = 5000;
/**
 * A worker still starting answers once its Estuary is built (before it waits for Redis);
 * until then /readyz does not wait long for it (probes time out after 1 s by default).
 */
const STARTING_REQUEST_TIMEOUT_MS = 500;
/** Restart delays double from 1 s up to this while a worker keeps dying young. */
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long before dying is restarted after the shortest delay again. */
const STABLE_AFTER_MS = 60_000;
/** A worker that died this many times in a row before it was up stops the whole process. */
const MAX_FAILED_STARTS = 5;

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** One of the N worker places: the process in it changes when one dies and is replaced. */
class Slot {
  readonly id: number;
  worker: Worker | undefined;
  started = false;
  startedAt = 0;
  restarts = 0;
  restartDelayMs = 0;
  restartTimer: NodeJS.Timeout | undefined;
  /** Deaths before 'started' in a row: a worker that can no longer start stops the whole process. */
  failedStarts = 0;
  /** Its last metrics: stand in for a scrape it misses, and its counters outlive it. */
  lastMetrics: MetricSnapshot | undefined;
  private nextRequest = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(id: number) {
    this.id = id;
  }

  get live(): boolean {
    return this.worker !== undefined && this.started;
  }

  /** `starting`: ask a worker that is still starting too (readiness: it answers why it is not ready). */
  request<T>(request: WorkerRequest, timeoutMs = REQUEST_TIMEOUT_MS, starting = false): Promise<T> {
    const worker = this.worker;
    if (!worker || !(this.started || (starting && worker.isConnected())))
      return Promise.reject(new Error(`worker ${this.id} is not running`));
    if (!this.started) timeoutMs = Math.min(timeoutMs, STARTING_REQUEST_TIMEOUT_MS);
    const id = ++this.nextRequest;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker ${this.id} did not answer ${request.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      worker.send({ estuary: 'request', id, request });
    });
  }

  /** Asks the worker to stop (flush, exit); `now`: without the flush. */
  stop(now: boolean): void {
    const worker = this.worker;
    if (!worker) return;
    if (worker.isConnected()) worker.send({ estuary: 'stop', now });
    else worker.process.kill(now ? 'SIGKILL' : 'SIGTERM');
  }

  answer(message: WorkerMessage): void {
    if (message.estuary !== 'response') return;
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.ok) pending.resolve(message.value);
    else pending.reject(new Error(message.error));
  }

  /** The process is gone: nothing it was asked will be answered. */
  gone(): void {
    this.worker = undefined;
    this.started = false;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`worker ${this.id} exited`));
    }
    this.pending.clear();
  }
}

/**
 * `service.workers` > 1: this process forks the workers (each a whole Estuary on the shared
 * listening sockets), restarts one that dies, and serves the admin API for all of them —
 * metrics merged per metric (counters summed; sizes of a shared Redis buffer taken once).
 * Resolves with the exit code once every worker has stopped.
 */
export function supervise(config: EstuaryConfig, options: SuperviseOptions, root: Logger): Promise<number> {
  const logger = root.child({ plugin_id: 'supervisor' });
  const count = config.service.workers;
  const slots = Array.from({ length: count }, (_, i) => new Slot(i + 1));
  const history = new MetricsHistory();
  const registry = history.own;
  const restartsTotal = new Counter({
    name: 'estuary_worker_restarts_total',
    help: 'Worker processes that died and were started again.',
    registers: [registry],
  });
  new Gauge({
    name: 'estuary_workers',
    help: 'Worker processes running (service.workers when all are up).',
    registers: [registry],
    collect() {
      this.set(slots.filter((s) => s.live).length);
    },
  });

  cluster.setupPrimary({ exec: options.exec, args: options.args, serialization: 'advanced' });
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let admin: AdminServer | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  let failed = false;

  const fork = (slot: Slot) => {
    const worker = cluster.fork({ ESTUARY_WORKER_ID: String(slot.id) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.estuary === 'started') {
        slot.started = true;
        slot.failedStarts = 0;
        slot.startedAt = Date.now();
        logger.info({ worker: slot.id, worker_pid: worker.process.pid }, 'worker started');
        if (phase === 'starting' && slots.every((s) => s.started)) void allStarted();
        return;
      }
      slot.answer(message);
    });
    // A request sent as the worker dies fails here; its exit is handled below.
    worker.on('error', (err) => logger.warn({ worker: slot.id, err: err.message }, 'worker IPC error'));
    worker.on('exit', (code, signal) => {
      const wasUp = slot.started;
      const ranMs = wasUp ? Date.now() - slot.startedAt : 0;
      slot.gone();
      history.retire(slot);
      if (phase === 'stopping') {
        if (code !== 0) failed = true;
        if (slots.every((s) => !s.worker)) finish(failed ? 1 : 0);
        return;
      }
      if (phase === 'starting') {
        // A config or a port every worker shares is wrong: restarting would fail the same way.
        logger.fatal({ worker: slot.id, code, signal }, 'worker failed to start');
        failed = true;
        stop('startup failure');
        return;
      }
      if (!wasUp && ++slot.failedStarts >= MAX_FAILED_STARTS) {
        logger.fatal(
          { worker: slot.id, code, signal, attempts: slot.failedStarts },
          'worker cannot start again',
        );
        failed = true;
        stop('worker cannot start');
        return;
      }
      slot.restarts += 1;
      restartsTotal.inc();
      slot.restartDelayMs =
        ranMs >= STABLE_AFTER_MS
          ? 1000
          : Math.min(MAX_RESTART_DELAY_MS, Math.max(1000, slot.restartDelayMs * 2));
      logger.error(
        { worker: slot.id, code, signal, restart_in_ms: slot.restartDelayMs },
        'worker died; starting another',
      );
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = undefined;
        if (phase === 'running') fork(slot);
      }, slot.restartDelayMs);
    });
  };

  const allStarted = async () => {
    phase = 'running';
    logger.info({ workers: count }, 'estuary started');
  };

  const stop = (reason: string) => {
    if (phase === 'stopping') {
      // A second signal: the workers exit without the flush.
      for (const s of slots) s.stop(true);
      return;
    }
    phase = 'stopping';
    logger.info({ reason, timeout_ms: config.service.shutdown_timeout }, 'stopping: flushing every worker');
    for (const s of slots) {
      clearTimeout(s.restartTimer);
      // A worker still starting stops once it is up: what it acked by then is flushed.
      s.stop(false);
    }
    if (slots.every((s) => !s.worker)) finish(failed ? 1 : 0);
    // Each worker exits on its own 5 s after shutdown_timeout; this is for one that cannot.
    setTimeout(() => {
      for (const s of slots) {
        if (!s.worker) continue;
        logger.error({ worker: s.id }, 'worker did not stop in service.shutdown_timeout + 7s; killing it');
        failed = true;
        s.worker.process.kill('SIGKILL');
      }
    }, config.service.shutdown_timeout + 7000).unref();
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    // Only to workers that are up: one still starting has no files open yet.
    for (const s of slots) if (s.live) s.worker?.process.kill('SIGHUP');
  });
  // Admin first, so /healthz answers while the workers start (a liveness probe must not kill
  // a pod whose workers wait for Redis) and /readyz says why they are not ready yet; admin
  // last, so /metrics and /readyz answer while the workers drain.
  const http = config.service.http;
  const starting = (async () => {
    if (!http.enabled) return true;
    admin = new AdminServer(
      supervisorTarget(config, slots, history),
      { listen: http.listen, port: http.port, authTokens: http.auth_tokens },
      root.child({ plugin_id: 'admin' }),
    );
    try {
      await admin.start();
      return true;
    } catch (err) {
      logger.fatal({ err }, 'startup failed');
      return false;
    }
  })();
  return starting.then(async (ok) => {
    if (!ok) {
      await admin?.stop();
      return 1;
    }
    // A signal during the admin start: nothing to fork (done is settled already).
    if (phase !== 'stopping') for (const slot of slots) fork(slot);
    const code = await done;
    await admin?.stop();
    return code;
  });
}

/** Metric kinds whose values only grow: a dead worker's stay in the sum, or the sum would go back. */
const CUMULATIVE = new Set<unknown>(['counter', 'histogram']);

/**
 * prom-client's default process metrics, merged: most add up (CPU, memory, open fds), but a
 * limit, a start time and event-loop lag say most as the tightest, the first, the worst.
 */
function perProcessAggregator(name: string): Aggregator | undefined {
  if (name === 'process_max_fds') return 'min';
  if (name === 'process_start_time_seconds') return 'min';
  if (name.startsWith('nodejs_eventloop_lag_')) return 'max';
  return undefined;
}

function mergeMetrics(parts: MetricSnapshot[]): Registry {
  return AggregatorRegistry.aggregate(
    parts.map((part) =>
      part.map((metric) => {
        const aggregator = perProcessAggregator(metric.name);
        return aggregator ? { ...metric, aggregator } : metric;
      }),
    ),
  );
}

/** The supervisor's own metrics, and what workers that died had counted. */
class MetricsHistory {
  readonly own = new Registry();
  /** Counters and histograms of dead workers, summed, as of their last scrape. */
  retired: MetricSnapshot = [];
  private retiring = Promise.resolve();

  constructor() {
    registerProcessMetrics(this.own);
  }

  retire(slot: Slot): void {
    const last = slot.lastMetrics;
    slot.lastMetrics = undefined;
    if (!last) return;
    const cumulative = last.filter((m) => CUMULATIVE.has(m.type));
    this.retiring = this.retiring.then(async () => {
      this.retired = await AggregatorRegistry.aggregate([this.retired, cumulative]).getMetricsAsJSON();
    });
  }
}

/** The admin API over every worker: each question goes to the workers that can answer it. */
function supervisorTarget(
  config: EstuaryConfig,
  slots: readonly Slot[],
  history: MetricsHistory,
): AdminTarget {
  const live = () => slots.filter((s) => s.live);
  const askAll = <T>(request: WorkerRequest) => Promise.allSettled(live().map((s) => s.request<T>(request)));
  const sharedBuffer = config.service.buffer.type !== 'memory';
  return {
    async metrics() {
      const snapshots = await Promise.all(
        live().map(async (s) => {
          try {
            s.lastMetrics = await s.request<MetricSnapshot>({ op: 'metrics' });
          } catch {
            // Slow to answer (a long GC, a busy loop): its last figures stand in, so no counter
            // of the sum goes back for a scrape.
          }
          return s.lastMetrics ?? [];
        }),
      );
      const merged = mergeMetrics([await history.own.getMetricsAsJSON(), history.retired, ...snapshots]);
      return { contentType: merged.contentType, text: await merged.metrics() };
    },
    async readiness(): Promise<Readiness> {
      const replies = await Promise.all(
        slots.map(async (s) => ({
          slot: s,
          readiness: await s.request<Readiness>({ op: 'readiness' }, undefined, true).catch(
            (err: Error): Readiness => ({
              ready: false,
              inputs_not_ready: [],
              buffer:
                s.started || !s.worker ? `worker: ${err.message}` : `worker: worker ${s.id} is starting`,
            }),
          ),
        })),
      );
      const notReady = replies.filter((r) => !r.readiness.ready);
      if (notReady.length === 0) return { ready: true };
      // The ports are shared: while one worker is up, connections go to it. A worker being
      // restarted does not take the pod out of its Service (nor, if every pod restarts one, all pods).
      if (notReady.length < replies.length)
        return { ready: true, workers_not_ready: notReady.map((r) => r.slot.id) };
      const first = notReady[0]!.readiness as Extract<Readiness, { ready: false }>;
      return {
        ready: false,
        inputs_not_ready: [
          ...new Set(notReady.flatMap((r) => (r.readiness.ready ? [] : r.readiness.inputs_not_ready))),
        ],
        buffer: first.buffer,
        workers_not_ready: notReady.map((r) => r.slot.id),
      };
    },
    async status() {
      const workers = await Promise.all(
        slots.map(async (s) => {
          const base = { worker: s.id, pid: s.worker?.process.pid ?? null, restarts: s.restarts };
          try {
            return { ...base, ...(await s.request<object>({ op: 'status' })) };
          } catch (err) {
            return { ...base, ready: false, error: (err as Error).message };
          }
        }),
      );
      return { ready: workers.every((w) => 'ready' in w && w.ready === true), workers };
    },
    deadLetter(outputId) {
      if (!config.outputs.some((o) => o.id === outputId)) return undefined;
      return sharedBuffer ? oneWorkerDeadLetter(outputId, live) : everyWorkerDeadLetter(outputId, askAll);
    },
  };
}

type DeadLetterRequest = Extract<WorkerRequest, { op: 'dead-letter' }>;

/** Redis: every worker sees the same queue, so any one answers. */
function oneWorkerDeadLetter(outputId: string, live: () => Slot[]): DeadLetterApi {
  const ask = async <T>(action: DeadLetterRequest['action'], chunk?: string): Promise<T> => {
    let failure: unknown = new Error('no worker is running');
    // One that does not answer (busy, dying): the next one reads the same queue.
    for (const slot of live()) {
      try {
        return await slot.request<T>({ op: 'dead-letter', outputId, action, chunk });
      } catch (err) {
        failure = err;
      }
    }
    throw failure;
  };
  return {
    outputId,
    list: () => ask<DescribedDeadLetter[]>('list'),
    show: (chunk) => ask<DescribedWithEntries | undefined>('show', chunk),
    replay: (chunk) => ask<boolean>('replay', chunk),
    purge: (chunk) => ask<number>('purge', chunk),
  };
}

/** Memory: each worker holds its own dead letters; the API shows them as one queue. */
function everyWorkerDeadLetter(
  outputId: string,
  askAll: <T>(request: WorkerRequest) => Promise<PromiseSettledResult<T>[]>,
): DeadLetterApi {
  // Every worker must answer: a partial list or purge would be a wrong one.
  const all = async <T>(action: DeadLetterRequest['action'], chunk?: string): Promise<T[]> =>
    (await askAll<T>({ op: 'dead-letter', outputId, action, chunk })).map((r) => {
      if (r.status === 'rejected') throw r.reason;
      return r.value;
    });
  return {
    outputId,
    list: async () =>
      (await all<DescribedDeadLetter[]>('list')).flat().sort((a, b) => a.time.localeCompare(b.time)),
    show: async (chunk) => (await all<DescribedWithEntries | undefined>('show', chunk)).find(Boolean),
    replay: async (chunk) => (await all<boolean>('replay', chunk)).some(Boolean),
    purge: async (chunk) => (await all<number>('purge', chunk)).reduce((a, b) => a + b, 0),
  };
}
