import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, type TestContext } from 'node:test';
import { type Agent, startFluentBit } from '../support/fluent-bit.ts';
import { freePort, waitFor } from '../support/wait.ts';

/*
 * What the interop suite's files share: a temp dir removed after the file, cleanups run in
 * reverse, the records every case sends (JSON lines with an id each), a tailing Fluent Bit
 * and the checks that each record arrived once.
 */

export interface Suite {
  dir: string;
  cleanup(stop: () => Promise<void>): void;
}

/** A temp dir for this file's agents, and `cleanup` to stop what a test started, after the file. */
export function suite(prefix: string): Suite {
  const dir = mkdtempSync(join(tmpdir(), `estuary-interop-${prefix}-`));
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, cleanup: (stop) => stops.push(stop) };
}

/** The padding of each record: 300 bytes that gzip shrinks to almost nothing. */
export const PAD = 'x'.repeat(300);

/** `count` JSON lines `{"id": i, "pad": PAD}` (i from 1) in a new file of `dir`; its path. */
export function recordsFile(dir: string, name: string, count: number): string {
  const path = join(dir, `${name}.log`);
  const lines = Array.from({ length: count }, (_, i) => `${JSON.stringify({ id: i + 1, pad: PAD })}\n`);
  writeFileSync(path, lines.join(''));
  return path;
}

/** Every id from 1 to `count` once, in any order, and nothing else. */
export function assertEachOnce(ids: unknown[], count: number, what: string): void {
  const sorted = [...ids].sort((a, b) => Number(a) - Number(b));
  assert.deepEqual(
    sorted,
    Array.from({ length: count }, (_, i) => i + 1),
    `${what}: each of the ${count} ids once (got ${ids.length})`,
  );
}

/**
 * The real Fluent Bit tailing a new file of `count` records (`recordsFile`) from its head as
 * `tag` (the json parser), flushing every 0.2 s, with `output` (its [OUTPUT] sections) and
 * `service` (more [SERVICE] keys); its HTTP server on a free port gives its own counters
 * (`delivered`). Undefined, the test skipped saying what is missing, where there is none.
 */
export async function tailingFluentBit(
  t: TestContext,
  { dir, cleanup }: Suite,
  {
    name,
    count,
    tag,
    output,
    service = '',
  }: { name: string; count: number; tag: string; output: string; service?: string },
): Promise<
  | (Agent & { file: string; delivered(output: string, count: number): Promise<FluentBitOutputMetrics> })
  | undefined
> {
  const parsers = join(dir, 'parsers.conf');
  writeFileSync(parsers, '[PARSER]\n    name   json\n    format json\n');
  const file = recordsFile(dir, name, count);
  const metricsPort = await freePort();
  const fb = startFluentBit(
    t,
    dir,
    `[SERVICE]
    flush         0.2
    grace         1
    log_level     info
    parsers_file  ${parsers}
    http_server   on
    http_listen   127.0.0.1
    http_port     ${metricsPort}
${service}[INPUT]
    name            tail
    path            ${file}
    read_from_head  true
    parser          json
    tag             ${tag}
${output}`,
  );
  if (!fb) return undefined;
  cleanup(fb.stop);
  return { ...fb, file, delivered: (output, n) => fluentBitDelivered(metricsPort, output, n, fb) };
}

export interface FluentBitOutputMetrics {
  proc_records: number;
  errors: number;
  retries: number;
  retried_records: number;
  retries_failed: number;
  dropped_records: number;
}

/** Fluent Bit's own counters per output instance (its /api/v1/metrics). */
async function fluentBitOutputs(metricsPort: number): Promise<Record<string, FluentBitOutputMetrics>> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/api/v1/metrics`);
  return ((await res.json()) as { output: Record<string, FluentBitOutputMetrics> }).output;
}

/**
 * waitFor, with what the agent printed by then (its tail) in the error when it times out:
 * the reason an agent did not deliver is in its own log.
 */
export async function waitForAgent<T>(
  check: () => T | Promise<T>,
  agent: { output(): string },
  what: string,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  try {
    return await waitFor(check, { timeoutMs, what });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- the agent said:\n${agent.output().slice(-2000)}`);
  }
}

/** Waits until Fluent Bit's output `name` says it delivered `count` records. */
async function fluentBitDelivered(
  metricsPort: number,
  name: string,
  count: number,
  agent: { output(): string },
): Promise<FluentBitOutputMetrics> {
  return waitForAgent(
    async () => {
      const m = (await fluentBitOutputs(metricsPort))[name];
      return m && m.proc_records >= count ? m : undefined;
    },
    agent,
    `Fluent Bit's ${name} to deliver ${count} records`,
  );
}

export { freePort };
