import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../../logger.ts';

export interface PoolOptions {
  mkdir: boolean;
  mode: number;
  maxOpen: number;
  logger: Logger;
}

/**
 * Append-mode handles kept open between chunks, least recently used closed past `maxOpen`.
 * Callers serialize their use: a handle is never closed while a write on it is pending.
 */
export class HandlePool {
  private readonly options: PoolOptions;
  /** Map order is use order: the first key is the least recently used. */
  private readonly handles = new Map<string, FileHandle>();

  constructor(options: PoolOptions) {
    this.options = options;
  }

  async get(path: string): Promise<FileHandle> {
    const cached = this.handles.get(path);
    if (cached) {
      this.handles.delete(path);
      this.handles.set(path, cached);
      return cached;
    }
    while (this.handles.size >= this.options.maxOpen) {
      const [oldest] = this.handles.keys();
      await this.close(oldest!);
    }
    if (this.options.mkdir) await mkdir(dirname(path), { recursive: true });
    // O_APPEND: every write lands at the end, even if another process appends too. Readable
    // as well, to look at the last byte.
    const handle = await open(path, 'a+', this.options.mode);
    try {
      await endLine(handle);
    } catch (err) {
      await handle.close();
      throw err;
    }
    this.options.logger.debug({ path }, 'opened file');
    this.handles.set(path, handle);
    return handle;
  }

  /** Forgets the handle first, so a failing close still leaves the next write a fresh open. */
  async close(path: string): Promise<void> {
    const handle = this.handles.get(path);
    if (!handle) return;
    this.handles.delete(path);
    await handle.close().catch((err: unknown) => {
      this.options.logger.warn({ path, err }, 'closing file failed');
    });
  }

  async closeAll(): Promise<void> {
    for (const path of [...this.handles.keys()]) await this.close(path);
  }

  get size(): number {
    return this.handles.size;
  }
}

/**
 * A process killed in the middle of a write leaves a line without its newline; ending it
 * keeps the torn line apart from the first line written now (a retry writes it whole).
 */
async function endLine(handle: FileHandle): Promise<void> {
  const { size } = await handle.stat();
  if (size === 0) return;
  const last = Buffer.alloc(1);
  await handle.read(last, 0, 1, size - 1);
  if (last[0] !== 0x0a) await handle.write('\n');
}
