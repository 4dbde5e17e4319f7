import type { FileHandle } from 'node:fs/promises';
import type { TaggedEntry } from '../../core/entry.ts';
import { errorMessage, RejectError, type RetryableError } from '../../core/errors.ts';
import { type ComponentDeps, defineComponent } from '../../registry.ts';
import { type Format, formatLine } from '../format.ts';
import { classifyIoError } from '../io-errors.ts';
import type { Chunk, Output, WriteResult } from '../output.ts';
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

interface Failure {
  entries: TaggedEntry[];
  error: RetryableError | RejectError;
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

  write(chunk: Chunk): Promise<WriteResult | undefined> {
    return this.serial(() => this.writeGroups(this.group(chunk.entries())));
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

  private group(entries: readonly TaggedEntry[]): Map<string, Group> {
    const groups = new Map<string, Group>();
    for (const entry of entries) {
      const path = this.path.resolve(entry.tag, entry.time);
      let group = groups.get(path);
      if (!group) {
        group = { entries: [], text: '' };
        groups.set(path, group);
      }
      group.entries.push(entry);
      group.text += formatLine(this.format, entry);
    }
    return groups;
  }

  /**
   * Each file gets one append, then an fsync. A file that fails does not hold back the others:
   * only its entries come back for retry (or are rejected), so no file gets duplicates.
   */
  private async writeGroups(groups: Map<string, Group>): Promise<WriteResult | undefined> {
    const failures: Failure[] = [];
    for (const [path, group] of groups) {
      try {
        const handle = await this.pool.get(path);
        await writeAll(handle, Buffer.from(group.text));
        if (this.fsync) await handle.sync();
      } catch (err) {
        // A handle that failed may be stale (ESTALE, a vanished mount): the next try reopens.
        await this.pool.close(path);
        failures.push({ entries: group.entries, error: classifyIoError(err, `writing ${path}`) });
      }
    }
    if (failures.length === 0) return undefined;
    const fatal = failures.filter((f) => f.error instanceof RejectError);
    // Nothing written and one kind of failure: say it as the error the buffer acts on directly.
    if (failures.length === groups.size && (fatal.length === 0 || fatal.length === failures.length)) {
      throw failures[0]!.error;
    }
    return {
      retry: failures.filter((f) => !(f.error instanceof RejectError)).flatMap((f) => f.entries),
      reject: fatal.flatMap((f) => f.entries.map((entry) => ({ entry, reason: errorMessage(f.error) }))),
    };
  }
}

/** One write(2) for the whole group where the kernel takes it (appendFile would cut it in 512KiB pieces). */
async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset);
    offset += bytesWritten;
  }
}
