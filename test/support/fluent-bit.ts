import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type AnchorName, findAnchor } from '../../bench/anchors.ts';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export interface Agent {
  process: ChildProcess;
  /** What it printed so far (stdout and stderr), for assertion messages and for out_stdout. */
  output(): string;
  stop(): Promise<void>;
}

let started = 0;
const found = new Map<AnchorName, ReturnType<typeof findAnchor>>();

/**
 * A real agent (../shared/interop, or $FLUENT_BIT_BIN / $FLUENTD_BIN) running `config` from
 * `dir`; undefined, with the test skipped saying what is missing, where it is not there.
 */
function startAgent(t: TestContext, name: AnchorName, dir: string, config: string): Agent | undefined {
  // Looked up once per process: Fluentd's check is a dry run of its engine (about a second).
  const anchor = found.get(name) ?? findAnchor(name);
  found.set(name, anchor);
  if ('missing' in anchor) {
    t.skip(`no ${name === 'fluent-bit' ? 'Fluent Bit' : 'Fluentd'}: ${anchor.missing}`);
    return undefined;
  }
  const file = join(dir, `${name}-${started++}.conf`);
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
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      running.delete(child);
    },
  };
}

/** The real Fluent Bit 5.1.1 running `config` (classic format) from `dir`, or a skipped test. */
export function startFluentBit(t: TestContext, dir: string, config: string): Agent | undefined {
  return startAgent(t, 'fluent-bit', dir, config);
}

/**
 * The real Fluentd 1.15.3 running `config` from `dir` without its supervisor (one process; its
 * own log and out_stdout go to `output()`), or a skipped test (saying to run
 * ../shared/interop/install-fluentd-deps.sh where its gems are missing).
 */
export function startFluentd(t: TestContext, dir: string, config: string): Agent | undefined {
  return startAgent(t, 'fluentd', dir, config);
}
