import { Estuary } from '../../src/app.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/logger.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';
import { scriptedOutput } from './outputs.ts';

/** An in-process Estuary from YAML (builtins plus `type: scripted`), with its admin server on a free port. */
export async function startEstuary(yaml: string, env: NodeJS.ProcessEnv = {}) {
  const registry = builtinRegistry().register(scriptedOutput);
  const config = loadConfig(yaml, 'test.yaml', registry, env);
  const app = await Estuary.create(config, { registry, logger: silentLogger() });
  const admin = new AdminServer(
    adminTarget(app),
    { listen: '127.0.0.1', port: 0, authTokens: ['admin-token'] },
    silentLogger(),
  );
  await app.start();
  await admin.start();
  const metrics = async () => (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  const stop = async () => {
    await app.stop();
    await admin.stop();
  };
  return { app, admin, metrics, stop };
}
