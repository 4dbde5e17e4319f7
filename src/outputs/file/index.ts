import type { FileHandle } from 'node:fs/promises';
import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, HaltError, RejectError, type WriteError } from '../../core/errors.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { abortError, untilAborted } from '../abort.ts';
import { encodeFailure, type Format, formatLine } from '../format.ts';
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
  entries: TaggedEntry[];
  text: string;
}

/** A chunk's entries by file, and those no file can take. */
interface Plan {
  groups: Map<string, Group>;
  rejected: Rejection[];
}

interface Failure {
  entries: TaggedEntry[];
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
    const plan = this.plan(chunk.entries());
    return untilAborted(
      this.serial(() => this.writeGroups(plan, signal)),
      signal,
      `${this.id}: writing files`,
    );
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

  private plan(entries: readonly TaggedEntry[]): Plan {
    const groups = new Map<string, Group>();
    const rejected: Rejection[] = [];
    for (const entry of entries) {
      let path: string;
      try {
        path = this.path.resolve(entry.tag, entry.time);
      } catch (err) {
        // Only this record's tag leads outside the directory: the others still go.
        rejected.push({ entry, reason: errorMessage(err) });
        continue;
      }
      let line: string;
      try {
        line = formatLine(this.format, entry);
      } catch (err) {
        // The same on every try (a record too deep to encode): only this record is refused.
        rejected.push({ entry, reason: encodeFailure(err) });
        continue;
      }
      let group = groups.get(path);
      if (!group) {
        group = { entries: [], text: '' };
        groups.set(path, group);
      }
      group.entries.push(entry);
      group.text += line;
    }
    return { groups, rejected };
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
        failures.push({ entries: group.entries, error: abortError(signal, `writing ${path}`) });
        continue;
      }
      try {
        const handle = await this.pool.get(path);
        await writeAll(handle, Buffer.from(group.text));
        if (this.fsync) await handle.sync();
      } catch (err) {
        // A handle that failed may be stale (ESTALE, a vanished mount): the next try reopens.
        await this.pool.close(path);
        const error = classifyIoError(err, `writing ${path}`, { pathFromRecord: this.path.fromRecord });
        failures.push({ entries: group.entries, error });
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
    retry: failures.filter((f) => !(f.error instanceof RejectError)).flatMap((f) => f.entries),
    reject: [
      ...plan.rejected,
      ...rejects.flatMap((f) => f.entries.map((entry) => ({ entry, reason: errorMessage(f.error) }))),
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
