import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { encodeFrames } from '../../src/buffer/redis/frames.ts';
import { OutputKeys } from '../../src/buffer/redis/keys.ts';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { SEAL, STAGE } from '../../src/buffer/redis/scripts.ts';
import { type BufferOverrides, resolveBufferSettings } from '../../src/config/schema.ts';
import { type Batch, decodeEntries, makeBatch } from '../../src/core/batch.ts';
import { BackpressureError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { emitTo, ScriptedOutput, type Step } from '../support/outputs.ts';
import { info, RedisServer, settingsFor } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

/** recovery_timeout: leases last 750ms, heartbeats every 250ms, a dead worker's lock lapses after 1s. */
const RECOVERY_MS = 1500;

const server = await RedisServer.start();
const backends: RedisBackend[] = [];
after(async () => {
  for (const b of backends) await b.close();
  await server.stop();
});

let next = 0;
function records(n: number) {
  const from = next;
  next += n;
  return makeBatch(
    'app.recovery',
    Array.from({ length: n }, (_, i) => ({
      time: new EventTime(1_700_000_000, from + i),
      record: { n: from + i, msg: 'x'.repeat(40) },
    })),
  );
}

async function replica(
  outputId: string,
  script: Step[] = [],
  overrides: BufferOverrides = {},
  url = server.url,
) {
  const backend = new RedisBackend(settingsFor(url, { recoveryTimeoutMs: RECOVERY_MS }), silentLogger());
  backends.push(backend);
  assert.ok(await backend.connect(5000), 'redis reachable');
  const output = new ScriptedOutput(outputId, script);
  const metrics = new Metrics();
  const settings = resolveBufferSettings(
    { flush_interval: 30, retry: { wait: 30, randomize: false, max_interval: 200 } },
    overrides,
  );
  const buffer = backend.create(output, settings, { logger: silentLogger(), metrics });
  metrics.registerOutput(buffer);
  await buffer.start();
  const emit = async (batch = records(10)) => {
    await emitTo(buffer, batch);
    return batch;
  };
  return { backend, output, buffer, metrics, emit };
}

/** Keys an idle output keeps, whatever happened before: fixed names, fixed sizes. */
const BASELINE = [':stats', ':leases'];
const numbersOf = (batch: Batch) => decodeEntries(batch.payload).map((e) => e.record.n as number);

describe('redis buffer: crashes between steps', () => {
  it('a crash between any two steps is recovered by the next replica, and no key grows (3 rounds)', async () => {
    const keys = new OutputKeys('estuary', 'orphans');
    const raw = new Redis(server.port, '127.0.0.1');
    after(() => raw.disconnect());
    const outputKeys = async () => (await raw.keys(`${keys.base}*`)).sort();
    const delivered = new Set<number>();

    for (let round = 0; round < 3; round++) {
      const expected: number[] = [];
      // A replica dies (SIGKILL-like) with one chunk in flight (its sink hangs) and one still open.
      const dying = await replica('orphans', [{ hold: new Promise<void>(() => {}) }], {
        flush_interval: 60_000,
        chunk_limit_records: 10,
      });
      expected.push(...numbersOf(await dying.emit(records(10))));
      await waitFor(() => dying.output.inflight === 1, { what: 'a chunk in flight on the dying replica' });
      expected.push(...numbersOf(await dying.emit(records(5))));
      await dying.backend.crash();

      // A chunk sealed by a process that died right after.
      const unqueued = records(7);
      const ghost = `ghost-${round}`;
      await STAGE.run(
        raw,
        [keys.base],
        [ghost, randomUUID(), encodeFrames([unqueued]), unqueued.count, unqueued.bytes, 1e9, 1e9, 1],
      );
      assert.equal(((await SEAL.run(raw, [keys.base], [ghost, ''])) as string[]).length, 1);
      expected.push(...numbersOf(unqueued));

      // A chunk an older Estuary left queued in BullMQ: sealed, but in none of ready / retry / leased.
      const stranded = records(3);
      const old = `old-${round}`;
      await STAGE.run(
        raw,
        [keys.base],
        [old, randomUUID(), encodeFrames([stranded]), stranded.count, stranded.bytes, 1e9, 1e9, 1],
      );
      const [strandedId] = (await SEAL.run(raw, [keys.base], [old, ''])) as string[];
      await raw.zrem(keys.ready, strandedId!);
      expected.push(...numbersOf(stranded));

      // A sealed id whose chunk is gone, a lease nobody renews.
      await raw.zadd(keys.sealed, 0, `lost-${round}`);
      await raw.zadd(keys.leases, 0, `dead-${round}`);

      // The next replica to start finds all of it.
      const next = await replica('orphans');
      await waitFor(
        () => {
          for (const e of next.output.delivered) delivered.add(e.record.n as number);
          return expected.every((n) => delivered.has(n));
        },
        { timeoutMs: 10_000, what: `round ${round}: every record delivered by the next replica` },
      );
      await waitFor(async () => settled(await outputKeys()), {
        timeoutMs: 5000,
        what: `round ${round}: keys back to the baseline`,
      });
      await next.buffer.stop(Date.now() + 2000);
    }

    // Every replica gone, every record delivered: what is left is a fixed handful of keys.
    const left = (await outputKeys()).map((k) => k.slice(keys.base.length));
    assert.ok(
      left.every((k) => BASELINE.includes(k)),
      `unexpected keys: ${left}`,
    );
    assert.equal(await raw.exists(keys.leases), 0, 'no lease left behind');
    const stats = await raw.hgetall(keys.stats);
    for (const f of ['bytes', 'stage_count', 'stage_bytes', 'queue_count', 'queue_bytes'])
      assert.equal(Number(stats[f] ?? 0), 0, `stats.${f} back to 0`);

    /** Only fixed keys: no chunk, meta or job hash; nothing queued, delayed, active, retrying or open. */
    function settled(ks: string[]): boolean {
      return ks.every((k) => BASELINE.includes(k.slice(keys.base.length)));
    }
  });

  it('the dead-letter queue stays under dead_letter.max_size, dropping (and counting) its oldest', async () => {
    const batch = records(10);
    const maxSize = batch.bytes * 3;
    const r = await replica('dead-bounded', Array(20).fill('fatal'), {
      chunk_limit_records: 10,
      dead_letter: { max_size: maxSize },
    });
    await r.emit(batch);
    for (let i = 1; i < 8; i++) await r.emit(records(10));
    const dropped = async () =>
      (await r.metrics.registry.getSingleMetric('estuary_records_dropped_total')!.get()).values.find(
        (v) => v.labels.reason === 'dead_letter_full',
      )?.value ?? 0;
    await waitFor(
      async () => {
        const kept = await r.buffer.deadLetter.list();
        return (
          r.output.writes.length === 8 && kept.reduce((n, d) => n + d.count, 0) + (await dropped()) === 80
        );
      },
      { what: 'every chunk dead-lettered or dropped' },
    );
    const kept = await r.buffer.deadLetter.list();
    assert.ok(kept.length >= 2 && kept.length <= 3, `${kept.length} chunks kept`);
    assert.ok(kept.reduce((n, d) => n + d.bytes, 0) <= maxSize);
    assert.deepEqual(
      kept.map((d) => d.time).sort(),
      kept.map((d) => d.time),
      'the newest are kept, in order',
    );
    await r.buffer.refreshStats!();
    assert.equal(r.buffer.stats().deadLetterChunks, kept.length);
  });
});

describe('redis buffer: shared state', () => {
  it('buffer sizes are read from Redis: every replica reports the same', async () => {
    const a = await replica('shared', [], { flush_interval: 60_000 });
    const b = await replica('shared', [], { flush_interval: 60_000 });
    await a.emit(records(7));
    await a.emit(records(3));
    await Promise.all([a.buffer.refreshStats!(), b.buffer.refreshStats!()]);
    const global = (s: ReturnType<typeof a.buffer.stats>) => [
      s.stageLength,
      s.stageBytes,
      s.queueLength,
      s.queueBytes,
      s.deadLetterChunks,
    ];
    assert.deepEqual(global(b.buffer.stats()), global(a.buffer.stats()));
    assert.equal(b.buffer.stats().stageLength, 1);
    assert.ok(b.buffer.stats().stageBytes > 0);
    const [ma, mb] = await Promise.all([a.metrics.render(), b.metrics.render()]);
    const line = (text: string) =>
      text.split('\n').find((l) => l.startsWith('fluentd_output_status_buffer_total_bytes{'));
    assert.equal(line(mb), line(ma));
    assert.equal(a.buffer.stats().emitCount, 2, 'counters stay per replica');
    assert.equal(b.buffer.stats().emitCount, 0);
  });

  it('total_limit_size is global: a replica is refused once the others filled the buffer', async () => {
    const batch = records(10);
    const overrides = {
      flush_interval: 60_000,
      total_limit_size: batch.bytes * 2,
      overflow_action: 'throw_exception' as const,
    };
    const a = await replica('global-limit', [], overrides);
    const b = await replica('global-limit', [], overrides);
    await a.emit(batch);
    await a.emit(records(10));
    // B trusts a total it saw within 100ms; past that it reads Redis and finds no room.
    await waitFor(
      () =>
        b.buffer.reserve(batch.bytes, { wait: false }).then(
          (permit) => {
            permit.release();
            return false;
          },
          (err) => err instanceof BackpressureError,
        ),
      { timeoutMs: 2000, what: 'B refused' },
    );
    await assert.rejects(b.emit(records(10)), BackpressureError);
  });
});

describe('redis buffer: wait_replicas', () => {
  it('acks once a Redis replica has the batch; refuses when none answers within wait_timeout', async () => {
    const primary = await RedisServer.start(['--repl-diskless-sync-delay', '0']);
    const follower = await RedisServer.start(['--replicaof', '127.0.0.1', String(primary.port)]);
    const backend = new RedisBackend(
      // Generous: under a loaded CI machine a replica's ACK can take a few hundred ms.
      settingsFor(primary.url, { waitReplicas: 1, waitTimeoutMs: 2000 }),
      silentLogger(),
    );
    after(async () => {
      await backend.close();
      await follower.stop();
      await primary.stop();
    });
    // The primary counts a replica for WAIT once it is online (after the replica's first ACK).
    await waitFor(async () => /state=online/.test((await info(primary, 'replication', 'slave0')) ?? ''), {
      what: 'replica online',
    });
    assert.ok(await backend.connect(5000));
    const buffer = backend.create(
      new ScriptedOutput('waited'),
      resolveBufferSettings({ flush_interval: 60_000 }),
      {
        logger: silentLogger(),
        metrics: new Metrics(),
      },
    );
    await buffer.start();
    await emitTo(buffer, records(5));
    // Acked after WAIT: the replica already has it.
    const stats = new OutputKeys('estuary', 'waited').stats;
    const replicated = new Redis(follower.port, '127.0.0.1');
    assert.equal(await replicated.hget(stats, 'bytes'), await backend.client.hget(stats, 'bytes'));
    replicated.disconnect();
    await follower.kill();
    const started = Date.now();
    await assert.rejects(emitTo(buffer, records(5)), (err: Error) => {
      assert.ok(err instanceof BackpressureError);
      assert.match(err.message, /only 0 of 1 Redis replicas/);
      return true;
    });
    assert.ok(Date.now() - started >= 1900, 'waited for wait_timeout');
    await buffer.stop(Date.now() + 1000);
  });
});
