import assert from 'node:assert/strict';
import type { OutputBuffer } from '../../src/buffer/buffer.ts';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { resolveBufferSettings } from '../../src/config/schema.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import type { Output } from '../../src/outputs/output.ts';
import type { Factory } from '../../src/registry.ts';
import { settingsFor } from './redis.ts';

/**
 * One replica of an output over a Redis buffer, as a crash test builds them: its own backend
 * (recovery_timeout `recoveryMs`), the output of `factory` with `options`, fast flushes and
 * retries, 10 records a chunk. The caller closes `backend` (a "killed" replica is never stopped).
 */
export async function redisReplica(
  redisUrl: string,
  factory: Factory<'output'>,
  options: Record<string, unknown>,
  { id, recoveryMs }: { id: string; recoveryMs: number },
): Promise<{ backend: RedisBackend; buffer: OutputBuffer; output: Output }> {
  const backend = new RedisBackend(settingsFor(redisUrl, { recoveryTimeoutMs: recoveryMs }), silentLogger());
  assert.ok(await backend.connect(5000), 'redis reachable');
  const deps = { id, logger: silentLogger(), metrics: new Metrics(), configDir: '/' };
  const output = factory.create(factory.schema.parse(options), deps);
  await output.start?.();
  const settings = resolveBufferSettings(factory.bufferDefaults, {
    flush_interval: 50,
    chunk_limit_records: 10,
    retry: { wait: 50, randomize: false, max_interval: 200 },
  });
  const buffer = backend.create(output, settings, deps);
  deps.metrics.registerOutput(buffer);
  await buffer.start();
  return { backend, buffer, output };
}
