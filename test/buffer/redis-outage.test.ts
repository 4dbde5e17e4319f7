import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { z } from 'zod';
import { Estuary } from '../../src/app.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig } from '../../src/config/load.ts';
import { makeBatch } from '../../src/core/batch.ts';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { RetryableError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { silentLogger } from '../../src/logger.ts';
import type { Chunk, Output } from '../../src/outputs/output.ts';
import { encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { defineComponent } from '../../src/registry.ts';
import { AdminServer, adminTarget } from '../../src/server/admin.ts';
import { RawClient } from '../support/forward-client.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances, scriptedOutput } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { RedisServer } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** `type: outage`: answers 503 for `down_ms` after it starts, then takes everything. */
class OutageOutput implements Output {
  readonly type = 'outage';
  readonly id: string;
  readonly delivered: TaggedEntry[] = [];
  readonly downMs: number;
  downUntil = Number.POSITIVE_INFINITY;

  constructor(id: string, downMs: number) {
    this.id = id;
    this.downMs = downMs;
  }
  async start(): Promise<void> {
    this.downUntil = Date.now() + this.downMs;
  }
  async write(chunk: Chunk): Promise<undefined> {
    if (Date.now() < this.downUntil) throw new RetryableError('sink unavailable (503)');
    this.delivered.push(...chunk.entries());
    return undefined;
  }
}
const outages = new Map<string, OutageOutput>();
const outageOutput = defineComponent({
  kind: 'output',
  type: 'outage',
  schema: z.strictObject({ down_ms: z.number().int().min(0) }),
  create(config, deps) {
    const out = new OutageOutput(deps.id, config.down_ms);
    outages.set(deps.id, out);
    return out;
  },
});

async function startEstuary(yaml: string) {
  const registry = builtinRegistry().register(scriptedOutput, outageOutput);
  const app = await Estuary.create(loadConfig(yaml, 'test.yaml', registry, {}), {
    registry,
    logger: silentLogger(),
  });
  const admin = new AdminServer(
    adminTarget(app),
    { listen: '127.0.0.1', port: 0, authTokens: [] },
    silentLogger(),
  );
  await app.start();
  await admin.start();
  const admin_ = (path: string) => fetch(`http://127.0.0.1:${admin.port}${path}`);
  return {
    app,
    metrics: async () => (await admin_('/metrics')).text(),
    readyz: async () => (await admin_('/readyz')).status,
    stop: async () => {
      await app.stop();
      await admin.stop();
    },
  };
}

function post(port: number, tag: string, records: unknown[]) {
  return postJson(port, tag, records).then(
    async (res) => {
      await res.arrayBuffer();
      return res.status;
    },
    () => 0,
  );
}

describe('redis buffer: Redis goes away and comes back', () => {
  it('Redis SIGKILLed and restarted mid-stream: 0 acked records lost, senders get 503 meanwhile, no restart', async (t) => {
    const redis = await RedisServer.start();
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer:
    type: redis
    redis_url: ${redis.url}
    recovery_timeout: 3s
    flush_interval: 50ms
    chunk_limit_records: 1000
    retry: { wait: 50ms, max_interval: 500ms }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: sink }
`);
    after(async () => {
      await e.stop();
      await redis.stop();
    });

    const SENDERS = 4;
    const BATCHES = 60;
    const PER_BATCH = 100;
    const acked = new Set<string>();
    let refused = 0;
    let failed = 0;
    const senders = Array.from({ length: SENDERS }, async (_, s) => {
      for (let b = 0; b < BATCHES; b++) {
        const batch = Array.from({ length: PER_BATCH }, (_, i) => ({ id: `${s}-${b}-${i}` }));
        for (;;) {
          const status = await post(port, 'app.restart', batch);
          if (status === 200) {
            for (const r of batch) acked.add(r.id);
            break;
          }
          if (status !== 503) {
            failed += 1;
            break;
          }
          refused += 1;
          // The sender's own backoff, as Fluent Bit's retry would.
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    });

    await waitFor(() => acked.size >= 4000, {
      timeoutMs: 10_000,
      what: '4000 records acked before the kill',
    });
    await redis.kill();
    await waitFor(() => refused >= 5, { what: 'senders refused with 503 while Redis is down' });
    assert.equal(await e.readyz(), 503, '/readyz fails while Redis is down');
    const ackedWhileDown = acked.size;
    await redis.start();
    await waitFor(async () => (await e.readyz()) === 200, { timeoutMs: 10_000, what: '/readyz back' });
    await Promise.all(senders);
    assert.ok(acked.size > ackedWhileDown, 'accepting again after Redis came back');
    assert.equal(failed, 0, 'no sender saw anything but 200 or 503');
    assert.equal(acked.size, SENDERS * BATCHES * PER_BATCH);

    const sink = scriptedInstances.get('sink')!;
    const seen = () => new Set(sink.delivered.map((e) => e.record.id as string));
    await waitFor(
      () => {
        const delivered = seen();
        return [...acked].every((id) => delivered.has(id));
      },
      {
        timeoutMs: 20_000,
        what: 'every acked record delivered',
      },
    );
    const delivered = seen();
    const lost = [...acked].filter((id) => !delivered.has(id)).length;
    const duplicates = sink.delivered.length - delivered.size;
    t.diagnostic(
      `acked ${acked.size}, delivered ${sink.delivered.length}, duplicates ${duplicates}, lost ${lost}, 503s ${refused}`,
    );
    assert.equal(lost, 0);
    const text = await e.metrics();
    assert.ok(
      sample(text, 'estuary_input_requests_total', { plugin_id: 'in', result: 'backpressure' }).value >=
        refused,
    );
  });
});

describe('redis buffer: forward while Redis is down', () => {
  it('withholds the ack while Redis is down, and acks by itself once it is back', async () => {
    const redis = await RedisServer.start();
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer: { type: redis, redis_url: ${redis.url}, flush_interval: 50ms }
inputs:
  - { type: forward, id: fwd, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: scripted, id: fsink }
`);
    after(async () => {
      await e.stop();
      await redis.stop();
    });
    await redis.kill();
    await waitFor(async () => (await e.readyz()) === 503, { what: '/readyz fails' });
    const client = await RawClient.connect({ port });
    const payload = makeBatch('app.fwd', [
      { time: new EventTime(1_700_000_000, 5), record: { a: 1 } },
    ]).payload;
    await client.send(encodePackedForward('app.fwd', payload, { chunk: 'c-1' }));
    await waitFor(
      async () => sample(await e.metrics(), 'estuary_input_bytes_total', { plugin_id: 'fwd' }).value > 0,
      { what: 'the message reached the input' },
    );
    assert.equal(client.frames.length, 0, 'no ack while Redis is down');
    await redis.start();
    assert.deepEqual(await client.frame(0, 10_000), { ack: 'c-1' });
    const sink = scriptedInstances.get('fsink')!;
    await waitFor(() => sink.delivered.length === 1, { what: 'delivered' });
    assert.equal(sink.delivered[0]!.time.nsec, 5);
    client.close();
  });
});

describe('redis buffer: the sink goes away and comes back', () => {
  it('sink down 5s (the issue says 60s; 5s keeps the suite short): all delivered after, retries in the metrics, the data waits in Redis, not in the heap', async () => {
    const redis = await RedisServer.start();
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer:
    type: redis
    redis_url: ${redis.url}
    flush_interval: 100ms
    chunk_limit_size: 1MiB
    retry: { wait: 100ms, max_interval: 1s, randomize: false }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - { type: outage, id: down, down_ms: 5000 }
`);
    after(async () => {
      await e.stop();
      await redis.stop();
    });
    const sink = outages.get('down')!;
    const labels = { plugin_id: 'down', type: 'outage' };
    const value = (text: string, name: string) => sample(text, name, labels).value;

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const BATCHES = 40;
    const PER_BATCH = 500;
    const filler = 'x'.repeat(450);
    for (let b = 0; b < BATCHES; b++) {
      const batch = Array.from({ length: PER_BATCH }, (_, i) => ({ n: b * PER_BATCH + i, msg: filler }));
      assert.equal(await post(port, 'app.outage', batch), 200);
    }
    await waitFor(
      async () => {
        const text = await e.metrics();
        return (
          value(text, 'fluentd_output_status_retry_count') >= 2 &&
          value(text, 'fluentd_output_status_retry_wait') > 0
        );
      },
      { what: 'retries, and a wait before the next, while the sink is down' },
    );
    const during = await e.metrics();
    const buffered = value(during, 'fluentd_output_status_buffer_total_bytes');
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(Date.now() < sink.downUntil, 'still inside the outage');
    assert.ok(buffered >= BATCHES * PER_BATCH * 450, `buffered ${buffered} bytes in Redis`);
    assert.ok(value(during, 'fluentd_output_status_buffer_queue_length') >= 2);
    assert.ok(value(during, 'fluentd_output_status_num_errors') >= 2);
    assert.ok(
      heapGrowth < buffered / 4,
      `heap grew ${heapGrowth} bytes while ${buffered} bytes wait in Redis`,
    );

    await waitFor(() => sink.delivered.length >= BATCHES * PER_BATCH, {
      timeoutMs: 15_000,
      what: 'everything delivered once the sink is back',
    });
    assert.equal(new Set(sink.delivered.map((e) => e.record.n)).size, BATCHES * PER_BATCH);
    await waitFor(async () => value(await e.metrics(), 'fluentd_output_status_buffer_total_bytes') === 0, {
      what: 'buffer empty again',
    });
    const done = await e.metrics();
    assert.equal(value(done, 'fluentd_output_status_buffer_queue_length'), 0);
    assert.equal(value(done, 'estuary_output_records_delivered_total'), BATCHES * PER_BATCH);
    assert.equal(value(done, 'estuary_dead_letter_chunks'), 0);
  });
});
