import { z } from 'zod';
import type { OutputBuffer } from '../../src/buffer/buffer.ts';
import type { Batch } from '../../src/core/batch.ts';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { HaltError, RejectError, RetryableError } from '../../src/core/errors.ts';
import type { Chunk, Output, WriteOptions, WriteResult } from '../../src/outputs/output.ts';
import { defineComponent } from '../../src/registry.ts';

/** What one write does; when the script runs out, writes succeed. */
export type Step =
  | 'ok'
  | 'retryable'
  | 'fatal'
  /** The sink refuses everything (401). */
  | 'halt'
  /** Never answers, and ignores the write signal. */
  | 'hang'
  | { retryAfterMs: number }
  | { retry: (e: TaggedEntry) => boolean }
  | { reject: (e: TaggedEntry) => boolean; reason: string }
  | { hold: Promise<void> };

export interface WriteLog {
  id: string;
  attempt: number;
  count: number;
  at: number;
  tags: string[];
}

/** A sink whose failures are scripted per write, recording what it accepted. */
export class ScriptedOutput implements Output {
  readonly type = 'scripted';
  readonly id: string;
  readonly delivered: TaggedEntry[] = [];
  readonly writes: WriteLog[] = [];
  script: Step[];
  inflight = 0;
  maxInflight = 0;

  constructor(id = 'scripted.0', script: Step[] = []) {
    this.id = id;
    this.script = script;
  }

  async write(chunk: Chunk): Promise<WriteResult | undefined> {
    const entries = chunk.entries();
    this.writes.push({
      id: chunk.id,
      attempt: chunk.attempt,
      count: chunk.count,
      at: Date.now(),
      tags: [...new Set(entries.map((e) => e.tag))],
    });
    this.inflight += 1;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      const step = this.script.shift() ?? 'ok';
      if (step === 'retryable') throw new RetryableError('sink unavailable (503)');
      if (step === 'fatal') throw new RejectError('sink refused: 400 mapper_parsing_exception');
      if (step === 'halt') throw new HaltError('sink refused: 401 unauthorized');
      if (step === 'hang') return await new Promise<never>(() => {});
      if (step === 'ok') {
        this.delivered.push(...entries);
        return undefined;
      }
      if ('retryAfterMs' in step)
        throw new RetryableError('429 too many requests', { retryAfterMs: step.retryAfterMs });
      if ('hold' in step) {
        await step.hold;
        this.delivered.push(...entries);
        return undefined;
      }
      if ('retry' in step) {
        this.delivered.push(...entries.filter((e) => !step.retry(e)));
        return { retry: entries.filter(step.retry) };
      }
      this.delivered.push(...entries.filter((e) => !step.reject(e)));
      return { reject: entries.filter(step.reject).map((entry) => ({ entry, reason: step.reason })) };
    } finally {
      this.inflight -= 1;
    }
  }
}

/**
 * `type: scripted` for configs in tests: `fail_times` retryable failures, then success;
 * `fatal: true` fails for good. Instances are kept by id so a test can look at them.
 */
export const scriptedInstances = new Map<string, ScriptedOutput>();
export const scriptedOutput = defineComponent({
  kind: 'output',
  type: 'scripted',
  schema: z.strictObject({
    fail_times: z.number().int().min(0).default(0),
    fatal: z.boolean().default(false),
    delay_ms: z.number().int().min(0).default(0),
  }),
  create(config, deps) {
    const steps: Step[] = config.fatal
      ? Array(1000).fill('fatal')
      : Array(config.fail_times).fill('retryable');
    const out = new ScriptedOutput(deps.id, steps);
    if (config.delay_ms > 0) {
      const write = out.write.bind(out);
      out.write = async (chunk) => {
        await new Promise((r) => setTimeout(r, config.delay_ms));
        return write(chunk);
      };
    }
    scriptedInstances.set(deps.id, out);
    return out;
  },
});

/** For tests that call an output's write directly: a signal that never aborts. */
export const NO_DEADLINE: WriteOptions = { signal: new AbortController().signal };

/** What the pipeline does for one buffer: take room, then stage. */
export async function emitTo(buffer: OutputBuffer, batch: Batch, wait = false): Promise<void> {
  await buffer.stage(batch, await buffer.reserve(batch.bytes, { wait }));
}
