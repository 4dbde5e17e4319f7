import { after } from 'node:test';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { silentLogger } from '../../src/logger.ts';
import { RedisServer, settingsFor } from '../support/redis.ts';
import { bufferContract } from './contract.ts';

const server = await RedisServer.start();
after(() => server.stop());

bufferContract('redis', async () => {
  const backend = new RedisBackend(settingsFor(server.url), silentLogger());
  if (!(await backend.connect(5000))) throw new Error('redis not reachable');
  return backend;
});
