import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { findAnchor } from '../../bench/anchors.ts';

/** The repository's root: the tests run from there (npm test), and the kit's paths are relative to it. */
export const ROOT = new URL('../../', import.meta.url).pathname;

export interface Ran {
  status: number | null;
  /** stdout and stderr together, for assertion messages. */
  output: string;
  /** Set when the program could not be started at all (ENOENT: not installed). */
  error?: NodeJS.ErrnoException;
}

export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Ran {
  const ran = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const result: Ran = { status: ran.status, output: `${ran.stdout ?? ''}${ran.stderr ?? ''}` };
  if (ran.error) result.error = ran.error as NodeJS.ErrnoException;
  return result;
}

/** A command that must exist and exit 0; a missing one fails with how CI installs it. */
export function runOk(command: string, args: string[], installHint: string, env?: NodeJS.ProcessEnv): string {
  const ran = run(command, args, env ? { env } : {});
  if (ran.error?.code === 'ENOENT') assert.fail(`${command} is not installed: ${installHint}`);
  assert.equal(ran.status, 0, `${command} ${args.join(' ')} exited ${ran.status}:\n${ran.output}`);
  return ran.output;
}

export const PROMTOOL_HINT = 'apt-get install prometheus (.ci/run does)';

/** `estuary check -c file` with exactly this environment (plus PATH): every ${VAR} it needs must be in `env`. */
export function estuaryCheck(file: string, env: Record<string, string>): string {
  return runOk(process.execPath, ['bin/estuary.js', 'check', '-c', file], 'Node 24', {
    PATH: process.env.PATH ?? '',
    ...env,
  });
}

/**
 * `fluent-bit --dry-run -c file` with the real Fluent Bit 5.1.1 of ../shared/interop (or
 * $FLUENT_BIT_BIN); skips the test, saying what is missing, where it is not there.
 */
export function fluentBitDryRun(t: TestContext, file: string, env: Record<string, string>): void {
  const fluentBit = findAnchor('fluent-bit');
  if ('missing' in fluentBit) {
    t.skip(`no Fluent Bit to validate ${file} with: ${fluentBit.missing}`);
    return;
  }
  const [bin, ...args] = fluentBit.command(file);
  const ran = run(bin!, ['--dry-run', ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
  assert.equal(ran.status, 0, `fluent-bit --dry-run -c ${file}:\n${ran.output}`);
  assert.match(ran.output, /configuration test is successful/);
}

/** A YAML file; `<<:` merge keys are applied (docker-compose.yml's replicas share one block). */
export function readYaml<T = unknown>(path: string): T {
  return parseYaml(readFileSync(`${ROOT}${path}`, 'utf8'), { merge: true }) as T;
}

/** Every document of a (multi-document) YAML file. */
export function readYamlDocuments(path: string): unknown[] {
  return parseAllDocuments(readFileSync(`${ROOT}${path}`, 'utf8')).map((doc) => {
    assert.deepEqual(doc.errors, [], `${path}: ${doc.errors.join('; ')}`);
    return doc.toJS() as unknown;
  });
}

/** A config duration (`30s`, `1m`, `500ms`) in seconds. */
export function seconds(duration: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(duration);
  assert.ok(m, `not a duration: ${duration}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
}
