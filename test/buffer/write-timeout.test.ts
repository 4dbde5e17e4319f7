import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { OutputBuffer } from '../../src/buffer/buffer.ts';
import { MemoryBackend } from '../../src/buffer/memory/memory-store.ts';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { resolveBufferSettings } from '../../src/config/schema.ts';
import { makeBatch } from '../../src/core/batch.ts';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import type { Chunk, Output } from '../../src/outputs/output.ts';
import { emitTo } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { RedisServer, settingsFor } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

/**
 * A sink that takes the request and never answers, and an output that does not even honour
 * the write signal: `buffer.write_timeout` gives the write up at the deadline anyway, frees
 * its flush slot and retries the chunk. In one process, the chunk is delivered once the sink
 * answers again, within write_timeout + backoff. With two replicas on one Redis, a chunk
 * whose write timed out on replica A is left to the others for a while (`avoid` in the LEASE
 * script), so replica B, whose sink works, delivers everything A staged.
 */

const WRITE_TIMEOUT_MS = 500;
const RETRY = { wait: 200, max_interval: 400, randomize: false };

/** Never answers while `answering` is false, and ignores the write signal meanwhile. */
class HangingOutput implements Output {
  readonly type = 'hanging';
  readonly id: string;
  answering = false;
  readonly delivered: TaggedEntry[] = [];
  /** Chunk ids, one per write. */
  readonly writes: string[] = [];

  constructor(id: string, answering = false) {
    this.id = id;
    this.answering = answering;
  }

  async write(chunk: Chunk): Promise<undefined> {
    this.writes.push(chunk.id);
    if (!this.answering) return new Promise<undefined>(() => {});
    this.delivered.push(...chunk.entries());
    return undefined;
  }
}

const settings = (overrides: Parameters<typeof resolveBufferSettings>[0] = {}) =>
  resolveBufferSettings({
    flush_interval: 50,
    write_timeout: WRITE_TIMEOUT_MS,
    retry: RETRY,
    ...overrides,
  });

const batch = (n: number) =>
  makeBatch(
    'app.web',
    Array.from({ length: n }, (_, i) => ({ time: new EventTime(1_800_000_000, i), record: { n: i } })),
  );

const sorted = (entries: TaggedEntry[]) => entries.map((e) => e.record.n as number).sort((a, b) => a - b);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

const timeouts = async (metrics: Metrics, id: string) =>
  sample(await metrics.render(), 'estuary_flush_duration_seconds_count', { plugin_id: id, result: 'timeout' })
    .value;

describe('write_timeout: a sink that never answers', () => {
  it('memory: the write is given up at the deadline and the chunk delivered once the sink answers, within write_timeout + backoff', async () => {
    const out = new HangingOutput('es');
    const metrics = new Metrics();
    const buffer = new MemoryBackend().create(out, settings(), { logger: silentLogger(), metrics });
    await buffer.start();
    try {
      await emitTo(buffer, batch(10));
      // Given up and tried again: the slot was freed although the write never returned.
      await waitFor(() => out.writes.length >= 2, { timeoutMs: 3000, what: 'a second try' });
      assert.ok((await timeouts(metrics, 'es')) >= 1);
      assert.equal(out.delivered.length, 0);

      out.answering = true;
      const answering = Date.now();
      await waitFor(() => out.delivered.length === 10, { timeoutMs: 3000, what: '10 records delivered' });
      const took = Date.now() - answering;
      // The write hanging when the sink came back is given up at its deadline, then the
      // chunk waits at most one backoff (max_interval) before it is written again.
      assert.ok(
        took <= WRITE_TIMEOUT_MS + RETRY.max_interval + 300,
        `delivered ${took}ms after the sink answered again`,
      );
      assert.deepEqual(sorted(out.delivered), range(10));
      assert.deepEqual(await buffer.deadLetter.list(), []);
      const stats = buffer.stats();
      assert.equal(stats.queueLength + stats.stageLength, 0);
    } finally {
      await buffer.stop(Date.now() + 1000);
    }
  });

  describe('redis, two replicas of one output', () => {
    let server: RedisServer;
    const backends: RedisBackend[] = [];
    const buffers: OutputBuffer[] = [];
    before(async () => {
      server = await RedisServer.start();
    });
    after(async () => {
      for (const b of buffers) await b.stop(Date.now() + 1000);
      for (const b of backends) await b.close();
      await server?.stop();
    });

    async function replica(output: HangingOutput) {
      const backend = new RedisBackend(settingsFor(server.url), silentLogger());
      backends.push(backend);
      if (!(await backend.connect(5000))) throw new Error('redis not reachable');
      const metrics = new Metrics();
      const buffer = backend.create(output, settings({ chunk_limit_records: 20 }), {
        logger: silentLogger(),
        metrics,
      });
      buffers.push(buffer);
      return { buffer, metrics };
    }

    it('what A staged and could not write in time is delivered by B', async () => {
      const outA = new HangingOutput('shared');
      const outB = new HangingOutput('shared', true);
      const a = await replica(outA);
      const b = await replica(outB);
      await a.buffer.start();
      // Five chunks of 20, sealed as they fill; A takes the oldest and hangs on it.
      await emitTo(a.buffer, batch(100));
      await waitFor(() => outA.writes.length >= 1, { what: 'A writing' });
      await b.buffer.start();

      await waitFor(() => outB.delivered.length >= 100, {
        timeoutMs: 8000,
        what: `100 records delivered by B (have ${outB.delivered.length})`,
      });
      assert.deepEqual(sorted(outB.delivered), range(100), 'each record once');
      assert.deepEqual(outA.delivered, []);
      // A's write of the first chunk timed out, and B wrote that chunk.
      assert.ok((await timeouts(a.metrics, 'shared')) >= 1, 'a timeout counted on A');
      assert.ok(outB.writes.includes(outA.writes[0]!), 'B wrote the chunk A gave up');
      // Left to B: A did not take the chunk it timed out on again (it would hang once more).
      assert.equal(outA.writes.filter((id) => id === outA.writes[0]).length, 1, 'A tried that chunk once');
      assert.deepEqual(await b.buffer.deadLetter.list(), []);
      await b.buffer.refreshStats?.();
      const stats = b.buffer.stats();
      assert.equal(stats.queueLength + stats.stageLength, 0, 'nothing left in Redis');
    });
  });
});
