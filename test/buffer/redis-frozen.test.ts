import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { RedisBackend } from '../../src/buffer/redis/redis-store.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { startEstuary } from '../support/estuary.ts';
import { RawClient } from '../support/forward-client.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { RedisServer, settingsFor } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

/** A logger whose lines (parsed) land in `lines`. */
function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('redis buffer: Redis frozen (SIGSTOP) and thawed', () => {
  it('a PING unanswered makes the backend not ready within ~2 s, one log line each way', async () => {
    const redis = await RedisServer.start();
    const { logger, lines } = capturingLogger();
    const backend = new RedisBackend(settingsFor(redis.url), logger);
    after(async () => {
      redis.resume();
      await backend.close();
      await redis.stop();
    });
    assert.equal(await backend.connect(5000), true);
    redis.pause();
    const frozenAt = Date.now();
    await waitFor(() => !backend.ready(), { timeoutMs: 3000, what: 'not ready while Redis is frozen' });
    const detectedMs = Date.now() - frozenAt;
    assert.ok(detectedMs <= 3000, `not ready after ${detectedMs} ms`);
    // A command fails within the command timeout instead of hanging.
    const started = Date.now();
    await assert.rejects(backend.client.get('x'));
    assert.ok(Date.now() - started < 3000, `a command failed after ${Date.now() - started} ms`);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(backend.ready(), false, 'still not ready');
    redis.resume();
    await waitFor(() => backend.ready(), { timeoutMs: 3000, what: 'ready again after SIGCONT' });
    const down = lines.filter((l) => l.msg.startsWith('redis not answering'));
    const up = lines.filter((l) => l.msg.startsWith('redis answering again'));
    assert.equal(down.length, 1, JSON.stringify(lines));
    assert.equal(up.length, 1, JSON.stringify(lines));
  });

  it('our own event loop stalled 2 s is not taken for a hung Redis', async () => {
    const redis = await RedisServer.start();
    const { logger, lines } = capturingLogger();
    const backend = new RedisBackend(settingsFor(redis.url), logger);
    after(async () => {
      await backend.close();
      await redis.stop();
    });
    assert.equal(await backend.connect(5000), true);
    await new Promise((r) => setTimeout(r, 700));
    // Stall right after the next probe is sent, before its answer can be read.
    const client = backend.client as unknown as { time: () => Promise<unknown> };
    const time = client.time.bind(client);
    let stalled = false;
    client.time = () => {
      const answer = time();
      if (!stalled) {
        stalled = true;
        process.nextTick(() => {
          const until = Date.now() + 2000;
          while (Date.now() < until) {
            // Busy: no timer, no socket read.
          }
        });
      }
      return answer;
    };
    await waitFor(() => stalled, { what: 'a probe sent' });
    const states: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      states.push(backend.ready());
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(states, Array(8).fill(true));
    assert.equal(lines.filter((l) => l.msg.startsWith('redis not answering')).length, 0);
  });

  it('/readyz 503 within 3 s of SIGSTOP and 200 after SIGCONT; senders get 503 not a hang; every acked record delivered', async (t) => {
    const redis = await RedisServer.start();
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer:
    type: redis
    redis_url: ${redis.url}
    recovery_timeout: 3s
    flush_interval: 50ms
    chunk_limit_records: 500
    retry: { wait: 50ms, max_interval: 500ms }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: frozen }
`);
    after(async () => {
      redis.resume();
      await e.stop();
      await redis.stop();
    });
    const acked = new Set<string>();
    let refused = 0;
    let longest = 0;
    let stop = false;
    const sender = (async () => {
      for (let b = 0; !stop; b++) {
        const batch = Array.from({ length: 50 }, (_, i) => ({ id: `${b}-${i}` }));
        const started = Date.now();
        const status = await postJson(port, 'app.frozen', batch).then(
          async (res) => {
            await res.arrayBuffer();
            return res.status;
          },
          () => 0,
        );
        longest = Math.max(longest, Date.now() - started);
        if (status === 200) for (const r of batch) acked.add(r.id);
        else {
          refused += 1;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    await waitFor(() => acked.size >= 1000, { timeoutMs: 10_000, what: 'records acked before the freeze' });
    assert.equal(await e.readyz(), 200);
    redis.pause();
    const frozenAt = Date.now();
    await waitFor(async () => (await e.readyz()) === 503, {
      timeoutMs: 3500,
      what: '/readyz 503 while Redis is frozen',
    });
    const detectedMs = Date.now() - frozenAt;
    await waitFor(() => refused >= 3, { timeoutMs: 5000, what: 'senders refused while frozen' });
    const frozenFor = Date.now() - frozenAt;
    redis.resume();
    await waitFor(async () => (await e.readyz()) === 200, {
      timeoutMs: 5000,
      what: '/readyz 200 after SIGCONT',
    });
    const before = acked.size;
    await waitFor(() => acked.size >= before + 500, { timeoutMs: 10_000, what: 'acking again' });
    stop = true;
    await sender;
    const sink = scriptedInstances.get('frozen')!;
    const seen = () => new Set(sink.delivered.map((r) => r.record.id as string));
    await waitFor(() => [...acked].every((id) => seen().has(id)), {
      timeoutMs: 20_000,
      what: 'every acked record delivered',
    });
    await new Promise((r) => setTimeout(r, 300));
    const unacked = [...seen()].filter((id) => !acked.has(id)).length;
    t.diagnostic(
      `delivered without an ack (a refused batch stored all the same): ${unacked}; not ready after ${detectedMs} ms; frozen ${frozenFor} ms; longest request ${longest} ms; acked ${acked.size}; 503s ${refused}; delivered ${sink.delivered.length}`,
    );
    assert.ok(detectedMs <= 3500);
    // A staging the sender saw refused is not stored when the thawed Redis runs it after all.
    assert.equal(sink.delivered.length, seen().size, 'no record delivered twice');
    assert.ok(longest < 3000, `a request took ${longest} ms`);
  });

  for (const how of ['CLIENT PAUSE 11 s', 'SIGSTOP 6 s'] as const)
    it(`a forward chunk re-sent while its staging hangs (${how}) is stored once and the re-send is acked`, async (t) => {
      const redis = await RedisServer.start();
      const port = await freePort();
      const sinkId = how === 'SIGSTOP 6 s' ? 'resent_stop' : 'resent_pause';
      const e = await startEstuary(`
service:
  buffer: { type: redis, redis_url: ${redis.url}, flush_interval: 50ms }
inputs:
  - { type: forward, id: fwd, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: ${sinkId} }
`);
      after(async () => {
        await e.stop();
        await redis.stop();
      });
      const RECORDS = 200;
      const payload = makeBatch(
        'app.resent',
        Array.from({ length: RECORDS }, (_, i) => ({
          time: new EventTime(1_700_000_000, i),
          record: { n: i },
        })),
      ).payload;
      const frame = encodePackedForward('app.resent', payload, { chunk: 'resent-1' });
      // A first chunk acked just before: the total it brought back is fresh, so the next
      // staging goes straight to STAGE (no read first), which the pause then holds.
      const warm = await RawClient.connect({ port });
      await warm.send(
        encodePackedForward(
          'app.resent',
          makeBatch('app.resent', [{ time: new EventTime(1_700_000_000, 0), record: { n: -1 } }]).payload,
          { chunk: 'warm' },
        ),
      );
      assert.deepEqual(await warm.frame(0, 5000), { ack: 'warm' });
      // Scripts wait (and whatever follows them on the connection): the staging hangs past the
      // old 10 s command timeout.
      // CLIENT PAUSE: past the old 10 s command timeout, TIME answered (the buffer stays ready
      // until the connection is held behind a script). SIGSTOP: nothing answered.
      const PAUSE_MS = how === 'SIGSTOP 6 s' ? 6000 : 11_000;
      const first = await RawClient.connect({ port });
      if (how === 'SIGSTOP 6 s') {
        redis.pause();
        setTimeout(() => redis.resume(), PAUSE_MS).unref();
        after(() => redis.resume());
      } else assert.match(await redis.command('CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE'), /^\+OK/);
      const pausedAt = Date.now();
      await first.send(frame);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(first.frames.length, 0, 'no ack while staging hangs');
      warm.close();
      first.close();
      // The sender re-sends on a new connection until acked, as Fluent Bit does.
      let attempts = 0;
      let ack: unknown;
      while (ack === undefined) {
        assert.ok(Date.now() - pausedAt < PAUSE_MS + 15_000, 'acked in time');
        attempts += 1;
        const c = await RawClient.connect({ port });
        await c.send(frame);
        await waitFor(() => c.frames.length > 0 || c.closed, {
          timeoutMs: 30_000,
          what: 'an ack or a close',
        });
        if (c.frames.length > 0) ack = await c.frame(0);
        c.close();
        if (ack === undefined) await new Promise((r) => setTimeout(r, 200));
      }
      assert.deepEqual(ack, { ack: 'resent-1' });
      const ackedAfter = Date.now() - pausedAt;
      const sink = scriptedInstances.get(sinkId)!;
      const delivered = () => sink.delivered.filter((r) => (r.record.n as number) >= 0).length;
      await waitFor(() => delivered() >= RECORDS, { timeoutMs: 10_000, what: 'delivered' });
      // Anything staged twice would be sealed and delivered by now too.
      await new Promise((r) => setTimeout(r, 1000));
      t.diagnostic(
        `acked ${ackedAfter} ms after the pause began, ${attempts} re-send(s); delivered ${delivered()}`,
      );
      assert.equal(delivered(), RECORDS, 'the chunk stored once');
      assert.equal(new Set(sink.delivered.map((r) => r.record.n)).size, RECORDS + 1);
    });
});
