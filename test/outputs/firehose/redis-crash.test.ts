import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RedisBackend } from '../../../src/buffer/redis/redis-store.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { firehoseOutput } from '../../../src/outputs/firehose/index.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { FirehoseFake } from '../../support/firehose-fake.ts';
import { emitTo } from '../../support/outputs.ts';
import { RedisServer } from '../../support/redis.ts';
import { redisReplica } from '../../support/redis-replica.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * A replica dies (SIGKILL-like: no settle, no goodbye) after Firehose stored a call's records
 * but before the answer came; another replica recovers the chunk and sends it again. Nothing
 * acked is lost. Firehose has no idempotent put, so the records of that one call arrive twice
 * (at-least-once, as the README says) — and no other record does.
 */

useAwsTestEnv({ region: 'us-east-1' });

const RECOVERY_MS = 1500;
const redis = await RedisServer.start();
const fake = await FirehoseFake.start({ streams: ['logs'] });
const backends: RedisBackend[] = [];

after(async () => {
  for (const b of backends) await b.close();
  await fake.close();
  await redis.stop();
});

async function replica() {
  const replica = await redisReplica(
    redis.url,
    firehoseOutput,
    { delivery_stream: 'logs', endpoint: fake.url },
    { id: 'stream', recoveryMs: RECOVERY_MS },
  );
  backends.push(replica.backend);
  return replica;
}

const batchOf = (from: number) =>
  makeBatch(
    'app.web',
    Array.from({ length: 10 }, (_, i) => ({
      time: new EventTime(1_700_000_000, i),
      record: { id: from + i, msg: 'GET /cart 200' },
    })),
  );

describe('firehose output over the redis buffer', () => {
  it('a replica killed while Firehose held its answer: every acked record delivered, only that call twice', async () => {
    let calls = 0;
    // The first call is stored, and its answer never comes: the replica dies waiting for it.
    fake.script = (call) => {
      calls += 1;
      if (calls > 1) return undefined;
      fake.records('logs').push(...call.records);
      return 'hang';
    };
    const dying = await replica();
    await emitTo(dying.buffer, batchOf(0));
    await waitFor(() => calls === 1, { what: 'the first call to reach Firehose' });
    await dying.backend.crash();

    const survivor = await replica();
    await emitTo(survivor.buffer, batchOf(10));
    const ids = () => fake.records('logs').map((r) => (JSON.parse(r.toString()) as { id: number }).id);
    // The hung call, the survivor's own chunk, and the dead replica's chunk recovered and sent again.
    await waitFor(() => calls === 3, { timeoutMs: 10_000, what: 'the survivor to send the recovered chunk' });
    await waitFor(async () => (await survivor.buffer.stats()).queueLength === 0, {
      what: 'the survivor drained',
    });
    const times = new Map<number, number>();
    for (const id of ids()) times.set(id, (times.get(id) ?? 0) + 1);
    assert.deepEqual(
      [...times.keys()].sort((a, b) => a - b),
      Array.from({ length: 20 }, (_, i) => i),
    );
    for (let id = 0; id < 10; id++)
      assert.equal(times.get(id), 2, `record ${id}: the lost answer's call, sent again`);
    for (let id = 10; id < 20; id++) assert.equal(times.get(id), 1, `record ${id}: once`);
    await survivor.output.stop?.();
  });
});
