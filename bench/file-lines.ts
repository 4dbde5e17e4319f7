import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';

const NEWLINE = 0x0a;

/**
 * Counts the complete lines (each ending in `\n`) in the files of one directory, as a file
 * output appends them. Each call reads only the bytes added since the last one, so polling a
 * file that grows to hundreds of MB stays cheap; a line still being written counts once its
 * newline is there. Files are only ever appended to: one that shrank is read from the start
 * again (its count restarts).
 */
export class FileLineCounter {
  private readonly dir: string;
  private readonly files = new Map<string, { offset: number; lines: number }>();
  private readonly chunk = Buffer.allocUnsafe(1 << 20);

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Lines in all files of the directory so far. */
  count(): number {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      // Not created yet (a server makes it on its first write).
      names = [];
    }
    let total = 0;
    for (const name of names) total += this.countFile(join(this.dir, name));
    return total;
  }

  private countFile(path: string): number {
    let state = this.files.get(path);
    if (!state) {
      state = { offset: 0, lines: 0 };
      this.files.set(path, state);
    }
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return state.lines;
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return 0;
      if (stat.size < state.offset) {
        state.offset = 0;
        state.lines = 0;
      }
      for (;;) {
        const n = readSync(fd, this.chunk, 0, this.chunk.length, state.offset);
        if (n === 0) break;
        state.offset += n;
        const read = this.chunk.subarray(0, n);
        for (let i = read.indexOf(NEWLINE); i !== -1; i = read.indexOf(NEWLINE, i + 1)) state.lines++;
      }
    } finally {
      closeSync(fd);
    }
    return state.lines;
  }
}
