import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { RedisBackend } from '../../../src/buffer/redis/redis-store.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { s3Output } from '../../../src/outputs/s3/index.ts';
import { useAwsTestEnv } from '../../support/aws.ts';
import { emitTo } from '../../support/outputs.ts';
import { RedisServer } from '../../support/redis.ts';
import { redisReplica } from '../../support/redis-replica.ts';
import { S3Fake } from '../../support/s3-fake.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * A replica dies (SIGKILL-like: no settle, no goodbye) after S3 stored its object but before
 * it could tell the buffer; another replica recovers the chunk and uploads it again. The key
 * is fixed by the chunk, so the second upload overwrites the first: one object, each record
 * once — not two objects with the same records.
 */

useAwsTestEnv({ region: 'us-east-1' });

const RECOVERY_MS = 1500;
const redis = await RedisServer.start();
const fake = await S3Fake.start({ buckets: ['logs'] });
const backends: RedisBackend[] = [];

after(async () => {
  for (const b of backends) await b.close();
  await fake.close();
  await redis.stop();
});

async function replica() {
  const replica = await redisReplica(
    redis.url,
    s3Output,
    { bucket: 'logs', endpoint: fake.url, force_path_style: true },
    { id: 'archive', recoveryMs: RECOVERY_MS },
  );
  backends.push(replica.backend);
  return replica;
}

describe('s3 output over the redis buffer', () => {
  it('a replica killed after its upload landed: the chunk ends up in one object, not two', async () => {
    let puts = 0;
    // The first upload is stored, and its answer never comes: the replica dies waiting for it.
    fake.script = (r) => {
      if (r.op !== 'PutObject') return undefined;
      puts += 1;
      if (puts > 1) return undefined;
      fake.objects.set(`${r.bucket}/${r.key}`, { body: r.body, headers: r.headers });
      return 'hang';
    };
    const dying = await replica();
    const entries = Array.from({ length: 10 }, (_, i) => ({
      time: new EventTime(1_700_000_000, i),
      record: { seq: i, msg: 'GET /cart 200' },
    }));
    await emitTo(dying.buffer, makeBatch('app.web', entries));
    await waitFor(() => puts === 1, { what: 'the first upload to reach S3' });
    await dying.backend.crash();

    const survivor = await replica();
    await waitFor(() => puts === 2, { timeoutMs: 10_000, what: 'the survivor to upload the chunk again' });
    await waitFor(async () => (await survivor.buffer.stats()).queueLength === 0, {
      what: 'the chunk settled on the survivor',
    });
    const putKeys = fake.requests.filter((r) => r.op === 'PutObject').map((r) => r.key);
    assert.equal(putKeys.length, 2);
    assert.equal(putKeys[0], putKeys[1], 'both tries wrote the same key');
    assert.deepEqual([...fake.objects.keys()], [`logs/${putKeys[0]}`]);
    const lines = gunzipSync(fake.objects.get(`logs/${putKeys[0]}`)!.body)
      .toString()
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: number }).seq);
    assert.deepEqual(lines, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await survivor.output.stop?.();
  });
});
