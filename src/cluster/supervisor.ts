import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
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
/** Restart delays double from 1 s up to this while a worker keeps dying young. */
const MAX_RESTART_DELAY_MS = 30_000;
/** A worker that ran this long before dying is restarted after the shortest delay again. */
const STABLE_AFTER_MS = 60_000;

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
  private nextRequest = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(id: number) {
    this.id = id;
  }

  get live(): boolean {
    return this.worker !== undefined && this.started;
  }

  request<T>(request: WorkerRequest, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    const worker = this.worker;
    if (!worker || !this.started) return Promise.reject(new Error(`worker ${this.id} is not running`));
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
  const registry = new Registry();
  registerProcessMetrics(registry);
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
      const ranMs = slot.started ? Date.now() - slot.startedAt : 0;
      slot.gone();
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
    const http = config.service.http;
    if (http.enabled) {
      admin = new AdminServer(
        supervisorTarget(config, slots, registry),
        { listen: http.listen, port: http.port, authTokens: http.auth_tokens },
        root.child({ plugin_id: 'admin' }),
      );
      try {
        await admin.start();
      } catch (err) {
        logger.fatal({ err }, 'startup failed');
        failed = true;
        stop('startup failure');
        return;
      }
    }
    logger.info({ workers: count }, 'estuary started');
  };

  const stop = (reason: string) => {
    if (phase === 'stopping') {
      // A second signal: the workers' own second-signal handling exits without the flush.
      for (const s of slots) s.worker?.process.kill('SIGTERM');
      return;
    }
    phase = 'stopping';
    logger.info({ reason, timeout_ms: config.service.shutdown_timeout }, 'stopping: flushing every worker');
    for (const s of slots) {
      clearTimeout(s.restartTimer);
      s.worker?.process.kill('SIGTERM');
    }
    if (slots.every((s) => !s.worker)) finish(failed ? 1 : 0);
    // Each worker exits on its own 5 s after shutdown_timeout; this is for one that cannot.
    setTimeout(() => {
      for (const s of slots) {
        if (!s.worker) continue;
        logger.error({ worker: s.id }, 'worker did not stop in service.shutdown_timeout + 7s; killing it');
        s.worker.process.kill('SIGKILL');
      }
      failed = true;
    }, config.service.shutdown_timeout + 7000).unref();
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const s of slots) s.worker?.process.kill('SIGHUP');
  });
  for (const slot of slots) fork(slot);
  // Admin last, so /metrics and /readyz answer while the workers drain.
  return done.then(async (code) => {
    await admin?.stop();
    return code;
  });
}

/** The admin API over every worker: each question goes to the workers that can answer it. */
function supervisorTarget(config: EstuaryConfig, slots: readonly Slot[], own: Registry): AdminTarget {
  const live = () => slots.filter((s) => s.live);
  const askAll = <T>(request: WorkerRequest) => Promise.allSettled(live().map((s) => s.request<T>(request)));
  const sharedBuffer = config.service.buffer.type !== 'memory';
  return {
    async metrics() {
      // A worker that does not answer in time is left out of this scrape rather than failing it.
      const snapshots = (await askAll<MetricSnapshot>({ op: 'metrics' }))
        .filter((r) => r.status === 'fulfilled')
        .map((r) => r.value);
      const merged = AggregatorRegistry.aggregate([await own.getMetricsAsJSON(), ...snapshots]);
      return { contentType: merged.contentType, text: await merged.metrics() };
    },
    async readiness(): Promise<Readiness> {
      const replies = await Promise.all(
        slots.map(async (s) => ({
          slot: s,
          readiness: await s
            .request<Readiness>({ op: 'readiness' })
            .catch((): Readiness => ({ ready: false, inputs_not_ready: [], buffer: 'worker not running' })),
        })),
      );
      const notReady = replies.filter((r) => !r.readiness.ready);
      if (notReady.length === 0) return { ready: true };
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
  const ask = <T>(action: DeadLetterRequest['action'], chunk?: string) => {
    const slot = live()[0];
    if (!slot) return Promise.reject(new Error('no worker is running'));
    return slot.request<T>({ op: 'dead-letter', outputId, action, chunk });
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
    list: async () => (await all<DescribedDeadLetter[]>('list')).flat(),
    show: async (chunk) => (await all<DescribedWithEntries | undefined>('show', chunk)).find(Boolean),
    replay: async (chunk) => (await all<boolean>('replay', chunk)).some(Boolean),
    purge: async (chunk) => (await all<number>('purge', chunk)).reduce((a, b) => a + b, 0),
  };
}
