import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { resolveBufferSettings } from '../../src/config/schema.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { emitTo, ScriptedOutput } from '../support/outputs.ts';
import { RedisServer, settingsFor } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

const batch = (n: number) =>
  makeBatch(
    'app',
    Array.from({ length: n }, (_, i) => ({
      time: new EventTime(1_700_000_000 + i, 0),
      record: { msg: 'x'.repeat(50) },
    })),
  );

async function open(
  server: RedisServer,
  overrides: Parameters<typeof resolveBufferSettings>[1],
  script = new ScriptedOutput('o'),
) {
  const backend = new RedisBackend(settingsFor(server.url), silentLogger());
  await backend.connect(5000);
  const metrics = new Metrics();
  const buffer = backend.create(script, resolveBufferSettings({ flush_interval: 20 }, overrides), {
    logger: silentLogger(),
    metrics,
  });
  await buffer.start();
  return { backend, buffer };
}

describe('redis buffer: bounded waiting and shutdown', () => {
  const servers: RedisServer[] = [];
  after(async () => {
    for (const s of servers) await s.stop();
  });

  it('senders blocked through a long outage hold one waiter each, not one per poll', async () => {
    const server = await RedisServer.start();
    servers.push(server);
    const b = batch(10);
    const sink = new ScriptedOutput('o', Array(10_000).fill('retryable'));
    const { backend, buffer } = await open(
      server,
      { total_limit_size: b.bytes * 2, overflow_action: 'block', retry: { wait: 100_000, forever: true } },
      sink,
    );
    // Staged past the limit (no permit asked), as other replicas might have filled it.
    for (let i = 0; i < 3; i++) await buffer.stage(b, { bytes: 0, release: () => {} });
    const blocked = Array.from({ length: 20 }, () =>
      buffer.reserve(b.bytes, { wait: true }).catch(() => undefined),
    );
    const waiters = () => (buffer as unknown as { admission: { waiting: number } }).admission.waiting;
    // Each poll lasts 200 ms: after 1.5 s a leak would show 7 waiters per sender.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(waiters() <= 20, `${waiters()} waiters for 20 blocked senders`);
    await buffer.stop(Date.now());
    await Promise.all(blocked);
    await backend.close();
  });

  // A regression here hangs rather than fails: the timeout turns it into a failure.
  it('stop() keeps its deadline and the process survives when Redis stops answering mid-seal', {
    timeout: 15_000,
  }, async () => {
    const server = await RedisServer.start();
    servers.push(server);
    const { backend, buffer } = await open(server, { flush_interval: 300 });
    const b = batch(1);
    await emitTo(buffer, b);
    const admin = new Redis(server.url!);
    // 3 s: long enough to outlast stop()'s 500 ms deadline; it then ends by itself.
    await admin.call('client', 'pause', '3000', 'all');
    // The flush_interval seal is now waiting on Redis.
    await new Promise((r) => setTimeout(r, 400));
    const started = Date.now();
    await buffer.stop(Date.now() + 500);
    const took = Date.now() - started;
    assert.ok(took < 2000, `stop() took ${took}ms for a 500ms deadline`);
    await waitFor(async () => (await admin.ping()) === 'PONG', {
      timeoutMs: 10_000,
      what: 'Redis answering again',
    });
    admin.disconnect();
    await backend.close();
  });
});
