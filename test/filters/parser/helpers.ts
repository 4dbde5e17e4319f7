import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { ConfigError } from '../../../src/config/errors.ts';
import { loadConfig } from '../../../src/config/load.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import type { Filter } from '../../../src/filters/filter.ts';
import { type Logger, silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';

const registry = builtinRegistry();

/** A parser filter from the YAML of its options (indented four spaces), through loadConfig. */
export function build(yaml: string, metrics = new Metrics(), logger: Logger = silentLogger()): Filter {
  const cfg = loadConfig(`filters:\n  - type: parser\n${yaml}`, 'f.yaml', registry, {});
  const c = cfg.filters[0]!;
  return registry.get('filter', 'parser')!.create(c.options, { id: c.id, logger, metrics, configDir: '.' });
}

/** The config errors of a parser filter's YAML, each `file:line: key: message`. */
export function errorsOf(yaml: string): string[] {
  try {
    build(yaml);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message.split('\n');
  }
  return assert.fail('expected a ConfigError');
}

export const BEFORE = new EventTime(1_600_000_000, 5);

export const entry = (record: Record<string, unknown>): Entry => ({ time: BEFORE, record });

/** The one entry a parser gave back (it never multiplies or drops without being told). */
export function one(result: ReturnType<Filter['apply']>): Entry {
  if (result === null || Array.isArray(result)) assert.fail(`one entry, got ${JSON.stringify(result)}`);
  return result as Entry;
}

/** What `format` (plus `extra` options) makes of `line` in the `log` field: record and time. */
export function parseLine(format: string, line: string, extra = ''): Entry {
  const f = build(`    key_name: log\n    format: ${format}\n${extra}`);
  return one(f.apply(entry({ log: line }), 't'));
}

/** The line failed to parse: the record came back as it went in. */
export function assertUnparsed(format: string, line: string, extra = ''): void {
  const f = build(`    key_name: log\n    format: ${format}\n${extra}`);
  const e = entry({ log: line });
  assert.equal(f.apply(e, 't'), e, `${format} should not read ${JSON.stringify(line.slice(0, 80))}`);
}

export const iso = (t: EventTime) => t.toIso();

/**
 * Runs a Ruby script with `input` as JSON on stdin and reads its JSON answer; skips the test
 * (saying how to get Ruby) where there is none. A script that fails fails the test.
 */
export function ruby<T>(t: TestContext, script: string, input: unknown, args: string[] = []): T | undefined {
  const run = spawnSync('ruby', ['-e', script, ...args], { input: JSON.stringify(input), encoding: 'utf8' });
  if (run.error) {
    t.skip(`no ruby (${run.error.message}): run ../shared/interop/install-fluentd-deps.sh`);
    return undefined;
  }
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as T;
}
