import cluster from 'node:cluster';
import type { Estuary } from '../app.ts';
import { errorMessage } from '../core/errors.ts';
import { adminTarget } from '../server/admin.ts';
import { isRequestMessage, isStopMessage, type ResponseMessage, type WorkerRequest } from './ipc.ts';

/** The worker side of the supervisor's admin server: answers its requests from `app`. */
export function answerSupervisor(app: Estuary): void {
  const target = adminTarget(app);
  const handle = async (request: WorkerRequest): Promise<unknown> => {
    switch (request.op) {
      case 'metrics':
        return app.metrics.snapshot();
      case 'readiness':
        return target.readiness();
      case 'status':
        return target.status();
      case 'dead-letter': {
        const dlq = target.deadLetter(request.outputId);
        if (!dlq) throw new Error(`unknown output "${request.outputId}"`);
        if (request.action === 'list') return dlq.list();
        if (request.action === 'purge') return dlq.purge(request.chunk);
        if (request.chunk === undefined) throw new Error(`${request.action} needs a chunk id`);
        return request.action === 'show' ? dlq.show(request.chunk) : dlq.replay(request.chunk);
      }
    }
  };
  process.on('message', (message: unknown) => {
    if (!isRequestMessage(message)) return;
    void handle(message.request).then(
      (value) => send({ estuary: 'response', id: message.id, ok: true, value }),
      (err: unknown) => send({ estuary: 'response', id: message.id, ok: false, error: errorMessage(err) }),
    );
  });
}

/** Calls `stop` for each stop message of the supervisor. */
export function onSupervisorStop(stop: (now: boolean) => void): void {
  process.on('message', (message: unknown) => {
    if (isStopMessage(message)) stop(message.now);
  });
}

/**
 * node:cluster makes a worker exit at once when its supervisor goes away, before any
 * listener of ours runs: buffered records would be lost. This worker stops itself instead.
 */
export function keepRunningOnDisconnect(): void {
  if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
}

/** Tells the supervisor this worker takes traffic. */
export function reportStarted(): void {
  send({ estuary: 'started' });
}

function send(message: ResponseMessage | { estuary: 'started' }): void {
  // The supervisor may be gone (the worker is then stopping on 'disconnect').
  if (process.connected) process.send?.(message);
}
