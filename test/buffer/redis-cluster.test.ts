import { after } from 'node:test';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { silentLogger } from '../../src/logger.ts';
import { settingsFor, startCluster } from '../support/redis.ts';
import { bufferContract } from './contract.ts';

// Three masters (`cluster-enabled yes`, joined by `redis-cli --cluster create`, no replicas):
// every key of an output carries its hash tag, so scripts never cross a slot.
const cluster = await startCluster(3);
after(() => cluster.stop());

bufferContract('redis cluster (3 masters)', async () => {
  const backend = new RedisBackend(
    settingsFor(undefined, {
      clusterNodes: cluster.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    }),
    silentLogger(),
  );
  if (!(await backend.connect(10_000))) throw new Error('redis cluster not reachable');
  return backend;
});
