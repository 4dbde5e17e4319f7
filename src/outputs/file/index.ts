import type { FileHandle } from 'node:fs/promises';
import { decodeSpans, EntryCursor, type EntrySpan } from '../../core/entry-cursor.ts';
import { errorMessage, HaltError, RejectError, type WriteError } from '../../core/errors.ts';
import { JsonBuffer } from '../../core/json-buffer.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import { encodeFailure, type Format, LineWriter, outputSizeHint } from '../format.ts';
import { classifyIoError } from '../io-errors.ts';
import type { Chunk, Output, Rejection, WriteOptions, WriteResult } from '../output.ts';
import { type FileConfig, fileSchema } from './config.ts';
import { HandlePool } from './handle-pool.ts';
import { PathTemplate } from './path-template.ts';

/** Appends records as lines to local files, Fluentd out_file style. */
export const fileOutput = defineComponent({
  kind: 'output',
  type: 'file',
  schema: fileSchema,
  create: (config, deps) => new FileOutput(config, deps),
});

interface Group {
  /** The file's lines. */
  out: JsonBuffer;
  /** Which entries they are, to hand back undecoded until a failure needs them. */
  spans: EntrySpan[];
}

/** A chunk's entries by file, and those no file can take. */
interface Plan {
  groups: Map<string, Group>;
  rejected: Rejection[];
  /** The chunk-sized buffer the first file's lines went into, lent for this write. */
  lent: JsonBuffer | undefined;
}

/** A lent buffer grown past this (one huge chunk) is dropped rather than kept. */
const MAX_SPARE_BYTES = 32 * 1024 * 1024;

interface Failure {
  group: Group;
  error: WriteError;
}

export class FileOutput implements Output {
  readonly id: string;
  readonly type = 'file';
  private readonly format: Format;
  private readonly fsync: boolean;
  private readonly path: PathTemplate;
  private readonly pool: HandlePool;
  /**
   * write, reopen and stop run one at a time: with flush_thread_count > 1 two chunks could
   * otherwise interleave inside a line, or one could close a handle the other is writing to.
   */
  private tail: Promise<unknown> = Promise.resolve();
  /**
   * The chunk-sized line buffer, reused from write to write: a new one per chunk costs an
   * allocation the size of the chunk each time, and the garbage collections that follow.
   */
  private spare: JsonBuffer | undefined;

  constructor(config: FileConfig, deps: ComponentDeps) {
    this.id = deps.id;
    this.format = config.format;
    this.fsync = config.fsync;
    this.path = new PathTemplate(config.path, deps.configDir, config.timezone === 'local');
    this.pool = new HandlePool({
      mkdir: config.mkdir,
      mode: config.file_mode,
      maxOpen: config.max_open_files,
      logger: deps.logger,
    });
  }

  /**
   * A file system call cannot be interrupted: at the deadline the write gives up waiting (the
   * call finishes in the background, and writes queued behind it never start).
   */
  write(chunk: Chunk, options: WriteOptions): Promise<WriteResult | undefined> {
    const { signal } = options;
    const plan = this.plan(chunk);
    const run = this.serial(() => this.writeGroups(plan, signal));
    // Given back only when the file calls are done, even if the driver stopped waiting.
    run.then(
      () => this.giveBack(plan),
      () => this.giveBack(plan),
    );
    return untilAborted(run, signal, `${this.id}: writing files`);
  }

  /** After logrotate moved the files away: the next write creates new ones at the same paths. */
  reopen(): Promise<void> {
    return this.serial(() => this.pool.closeAll());
  }

  stop(): Promise<void> {
    return this.serial(() => this.pool.closeAll());
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => {});
    return run;
  }

  private plan(chunk: Chunk): Plan {
    const groups = new Map<string, Group>();
    const rejected: Rejection[] = [];
    const writer = new LineWriter(this.format);
    let lastPath: string | undefined;
    let group: Group | undefined;
    let lent: JsonBuffer | undefined;
    for (const batch of chunk.batches) {
      const cursor = new EntryCursor(batch.payload);
      while (cursor.next()) {
        let path: string;
        try {
          path = this.path.resolveAt(batch.tag, cursor.sec, cursor.nsec);
        } catch (err) {
          // Only this record's tag leads outside the directory: the others still go.
          rejected.push({ entry: cursor.decode(batch.tag), reason: errorMessage(err) });
          continue;
        }
        if (path !== lastPath || !group) {
          group = groups.get(path);
          if (!group) {
            // The first file gets room for the whole chunk: most chunks go to one file.
            let out: JsonBuffer;
            if (lent) out = new JsonBuffer(16 * 1024);
            else out = lent = this.borrow(chunk.bytes);
            group = { out, spans: [] };
            groups.set(path, group);
          }
          lastPath = path;
        }
        try {
          writer.write(group.out, batch.tag, cursor);
        } catch (err) {
          // The same on every try (an unknown ext type): only this record is refused.
          rejected.push({ entry: cursor.decode(batch.tag), reason: encodeFailure(err) });
          continue;
        }
        const span = group.spans[group.spans.length - 1];
        if (span && span.payload === batch.payload && span.end === cursor.start) span.end = cursor.end;
        else
          group.spans.push({ tag: batch.tag, payload: batch.payload, start: cursor.start, end: cursor.end });
      }
    }
    // A file none of whose records could be written is not even created.
    for (const [path, g] of groups) if (g.spans.length === 0) groups.delete(path);
    return { groups, rejected, lent };
  }

  private borrow(chunkBytes: number): JsonBuffer {
    const spare = this.spare;
    this.spare = undefined;
    if (!spare) return new JsonBuffer(outputSizeHint(chunkBytes));
    spare.n = 0;
    return spare;
  }

  private giveBack(plan: Plan): void {
    if (plan.lent && plan.lent.buf.length <= MAX_SPARE_BYTES) this.spare = plan.lent;
  }

  /**
   * Each file gets one append, then an fsync. A file that fails does not hold back the others:
   * only its entries come back for retry (or are rejected), so no file gets duplicates. The
   * signal is looked at between files: the files not started come back for retry.
   */
  private async writeGroups(plan: Plan, signal: AbortSignal): Promise<WriteResult | undefined> {
    const failures: Failure[] = [];
    for (const [path, group] of plan.groups) {
      if (signal.aborted) {
        failures.push({ group, error: abortError(signal, `writing ${path}`) });
        continue;
      }
      try {
        const handle = await this.pool.get(path);
        await writeAll(handle, group.out.view());
        if (this.fsync) await handle.sync();
      } catch (err) {
        // A handle that failed may be stale (ESTALE, a vanished mount): the next try reopens.
        await this.pool.close(path);
        const error = classifyIoError(err, `writing ${path}`, { pathFromRecord: this.path.fromRecord });
        failures.push({ group, error });
      }
    }
    return outcome(plan, failures);
  }
}

/**
 * Nothing written: the error the driver acts on directly — a halt first (the sink refuses
 * everything; the data waits), else the one kind every file failed with. Otherwise per entry:
 * a file that halted or failed for now is retried, one that can never take its records rejects them.
 */
function outcome(plan: Plan, failures: readonly Failure[]): WriteResult | undefined {
  if (failures.length === 0 && plan.rejected.length === 0) return undefined;
  if (failures.length === plan.groups.size && failures.length > 0) {
    const halt = failures.find((f) => f.error instanceof HaltError);
    if (halt) throw halt.error;
    const first = failures[0]!.error;
    const oneKind = failures.every((f) => f.error.constructor === first.constructor);
    if (oneKind && plan.rejected.length === 0) throw first;
  }
  const rejects = failures.filter((f) => f.error instanceof RejectError);
  return {
    retry: failures
      .filter((f) => !(f.error instanceof RejectError))
      .flatMap((f) => decodeSpans(f.group.spans)),
    reject: [
      ...plan.rejected,
      ...rejects.flatMap((f) =>
        decodeSpans(f.group.spans).map((entry) => ({ entry, reason: errorMessage(f.error) })),
      ),
    ],
  };
}

/** One write(2) for the whole group where the kernel takes it (appendFile would cut it in 512KiB pieces). */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset);
    offset += bytesWritten;
  }
}
