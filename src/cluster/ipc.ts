/**
 * Messages between the supervisor and its worker processes (node:cluster IPC, structured
 * clone). The supervisor asks; a worker answers from its own Estuary.
 */

export type DeadLetterAction = 'list' | 'show' | 'replay' | 'purge';

export type WorkerRequest =
  | { op: 'metrics' }
  | { op: 'readiness' }
  | { op: 'status' }
  | { op: 'dead-letter'; outputId: string; action: DeadLetterAction; chunk?: string };

export interface RequestMessage {
  estuary: 'request';
  id: number;
  request: WorkerRequest;
}

export type ResponseMessage = { estuary: 'response'; id: number } & (
  | { ok: true; value: unknown }
  | { ok: false; error: string }
);

/** A worker's inputs listen and its buffers run: it can take traffic. */
export interface StartedMessage {
  estuary: 'started';
}

export type WorkerMessage = ResponseMessage | StartedMessage;

function isTagged(value: unknown): value is { estuary: unknown } {
  return typeof value === 'object' && value !== null && 'estuary' in value;
}

/** Stop: flush and exit; `now`: exit without the flush (a second signal to the supervisor). */
export interface StopMessage {
  estuary: 'stop';
  now: boolean;
}

export type SupervisorMessage = RequestMessage | StopMessage;

export function isStopMessage(value: unknown): value is StopMessage {
  return isTagged(value) && value.estuary === 'stop';
}

export function isRequestMessage(value: unknown): value is RequestMessage {
  return isTagged(value) && value.estuary === 'request';
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return isTagged(value) && (value.estuary === 'response' || value.estuary === 'started');
}
