import { Estuary } from '../../src/app.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/logger.ts';
import type { Factory } from '../../src/registry.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';
import { scriptedOutput } from './outputs.ts';

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
  const stop = async () => {
    await app.stop();
    await admin.stop();
  };
  return { app, admin, metrics, readyz, healthz: adminUrl('/healthz'), stop };
}
