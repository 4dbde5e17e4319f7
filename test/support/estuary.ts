import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Estuary } from '../../src/app.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/logger.ts';
import type { Factory } from '../../src/registry.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';
import { scriptedOutput } from './outputs.ts';
import { sample } from './prom-text.ts';

/**
 * An in-process Estuary from YAML (builtins, `type: scripted` and any `extra` types), with its
 * admin server on a free port.
 */
export async function startEstuary(yaml: string, env: NodeJS.ProcessEnv = {}, extra: Factory[] = []) {
  const registry = builtinRegistry().register(scriptedOutput, ...extra);
  const config = loadConfig(yaml, 'test.yaml', registry, env);
  const app = await Estuary.create(config, { registry, logger: silentLogger() });
  const admin = new AdminServer(
    adminTarget(app),
    { listen: '127.0.0.1', port: 0, authTokens: ['admin-token'] },
    silentLogger(),
  );
  await app.start();
  await admin.start();
  const adminUrl = (path: string) => `http://127.0.0.1:${admin.port}${path}`;
  const metrics = async () => (await fetch(adminUrl('/metrics'))).text();
  const readyz = async () => (await fetch(adminUrl('/readyz'))).status;
  /** estuary_output_halted of an output: 1 while it is halted. */
  const halted = async (id: string) =>
    sample(await metrics(), 'estuary_output_halted', { plugin_id: id }).value;
  /** Why an output is halted, as the admin status says ('' when it is not). */
  const haltReason = async (id: string) => {
    const status = (await (await fetch(adminUrl('/api/v1/status'))).json()) as {
      outputs: { id: string; buffer: { haltReason?: string } }[];
    };
    return status.outputs.find((o) => o.id === id)?.buffer.haltReason ?? '';
  };
  const stop = async () => {
    await app.stop();
    await admin.stop();
  };
  return { app, admin, metrics, readyz, halted, haltReason, healthz: adminUrl('/healthz'), stop };
}

/** A secret access key in AWS's documentation format: what `estuaryCheck` must never print. */
export const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY';
export const AWS_KEY_ID = 'AKIAFAKEKEYID';

/**
 * `estuary check -c <file>` for this YAML, run as the CLI runs, with AWS credentials in its
 * environment: the exit status and what it printed (an AWS output's test looks for the
 * credentials in it).
 */
export function estuaryCheck(yaml: string): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-check-'));
  try {
    const file = join(dir, 'estuary.yaml');
    writeFileSync(file, yaml);
    return spawnSync(process.execPath, ['bin/estuary.js', 'check', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, AWS_ACCESS_KEY_ID: AWS_KEY_ID, AWS_SECRET_ACCESS_KEY: AWS_SECRET },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
