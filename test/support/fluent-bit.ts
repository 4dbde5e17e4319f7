import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { findAnchor } from '../../bench/anchors.ts';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/**
 * The real Fluent Bit 5.1.1 (../shared/interop, or $FLUENT_BIT_BIN) running `config` (classic
 * format) from `dir`; undefined, with the test skipped saying what is missing, where it is not
 * there. `output()` is what it printed so far, for assertion messages.
 */
export function startFluentBit(
  t: TestContext,
  dir: string,
  config: string,
): { process: ChildProcess; output(): string; stop(): Promise<void> } | undefined {
  const anchor = findAnchor('fluent-bit');
  if ('missing' in anchor) {
    t.skip(`no Fluent Bit: ${anchor.missing}`);
    return undefined;
  }
  const file = join(dir, `fluent-bit-${running.size}.conf`);
  writeFileSync(file, config);
  const [bin, ...args] = anchor.command(file);
  const child = spawn(bin!, args, {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let printed = '';
  child.stdout!.on('data', (d: Buffer) => {
    printed += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    printed += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    process: child,
    output: () => printed,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
      running.delete(child);
    },
  };
}
