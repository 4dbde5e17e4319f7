import type { Batch } from '../core/batch.ts';

export interface EmitOptions {
  /**
   * true: when a routed buffer is full under `overflow_action: block`, wait for room (the
   * forward input stops reading its socket meanwhile). false: fail at once with a
   * BackpressureError (the HTTP input answers 503 + Retry-After).
   */
  wait: boolean;
}

/** Resolves once the batch is durable in the buffer of every output it routes to. */
export type Emit = (batch: Batch, options: EmitOptions) => Promise<void>;

export interface Input {
  readonly id: string;
  readonly type: string;
  /** Binds and returns once listening; the serving goes on in the background. */
  start(emit: Emit): Promise<void>;
  /** Stops accepting, lets in-flight requests finish. Safe without start, safe twice. */
  stop(): Promise<void>;
  /** Listening and able to take data (for /readyz). */
  ready(): boolean;
}
