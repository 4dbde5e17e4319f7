import type { Writable } from 'node:stream';
import { z } from 'zod';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import { FORMATS, formatChunk } from '../format.ts';
import { classifyIoError } from '../io-errors.ts';
import type { Chunk, Output, WriteOptions } from '../output.ts';

export const stdoutSchema = z.strictObject({
  /** `json` ({"tag","time","record"} per line), `fluentd` (time, tag, json; tab-separated) or `record`. */
  format: z.enum(FORMATS).default('json'),
});
export type StdoutConfig = z.output<typeof stdoutSchema>;

/** Writes each chunk to stdout as lines; our own logs go to stderr, so the two never mix. */
export const stdoutOutput = defineComponent({
  kind: 'output',
  type: 'stdout',
  schema: stdoutSchema,
  create: (config, deps) => createStdoutOutput(config, deps),
});

/** The factory's body, with the stream injectable so tests need not capture process.stdout. */
export function createStdoutOutput(
  config: StdoutConfig,
  deps: ComponentDeps,
  stream: Writable = process.stdout,
): Output {
  // A closed pipe also emits 'error' after the write callback; unheard, it would kill the
  // process. The write callback already reports it, so the event itself is only logged.
  const onError = (err: Error) => deps.logger.debug({ err }, 'stdout stream error');
  stream.on('error', onError);
  /**
   * The last write's callback. A new chunk waits for it before writing, so a reader that
   * stopped reading holds at most one chunk in the stream's memory, not one per retry.
   */
  let last: Promise<void> = Promise.resolve();
  return {
    id: deps.id,
    type: 'stdout',
    async write(chunk: Chunk, { signal }: WriteOptions) {
      const { bytes, rejected } = formatChunk(config.format, chunk);
      const result = rejected.length > 0 ? { reject: rejected } : undefined;
      if (bytes.length === 0) return result;
      // One write per chunk; resolving on its callback means the next chunk waits until this
      // one reached the OS, which is how stdout's backpressure reaches the buffer.
      const mine = last.then(() => {
        // Given up while waiting its turn: the retry writes it, so this one must not.
        if (signal.aborted) throw abortError(signal, 'writing to stdout');
        return new Promise<void>((resolve, reject) => {
          stream.write(bytes, (err) => (err ? reject(classifyIoError(err, 'writing to stdout')) : resolve()));
        });
      });
      last = mine.catch(() => {});
      await untilAborted(mine, signal, 'writing to stdout');
      return result;
    },
    async stop() {
      stream.off('error', onError);
    },
  };
}
