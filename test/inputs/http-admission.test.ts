import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEstuary } from '../support/estuary.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { RedisServer } from '../support/redis.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * Admission under a crowd: 50 HTTP senders post at once to an Estuary whose output is held
 * (every write waits until the test lets it go) and whose buffer is total_limit_size 1 MiB,
 * chunk_limit_size 128 KiB, overflow_action block. HTTP senders are not made to wait: a full
 * buffer answers 503 with Retry-After, and the senders here retry as a client does (after a
 * short randomized pause rather than the whole Retry-After, to keep the test short).
 *
 * The buffer's size, scraped from /metrics throughout, never passes 1 MiB plus one chunk —
 * senders admitted together cannot overfill it (before admission by permits, senders checked
 * a size read from Redis concurrently and the redis buffer reached 1.2–1.3 MiB here) — and
 * once the output is let go, every record acknowledged with a 2xx is delivered, once.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const SENDERS = 50;
/** Acknowledged requests each sender wants: 50 × 3 × ~41 KiB ≈ 6 MiB, six times the buffer. */
const QUOTA = 3;
const RECORDS_PER_REQUEST = 40;
const PAD = 'x'.repeat(1000);

async function crowd(bufferKeys: string) {
  const port = await freePort();
  const e = await startEstuary(`
service:
  shutdown_timeout: 2s
  buffer: { ${bufferKeys} }
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1 }
outputs:
  - type: scripted
    id: held
    match: "**"
    buffer:
      total_limit_size: 1MiB
      chunk_limit_size: 128KiB
      overflow_action: block
      flush_interval: 100ms
`);
  const out = scriptedInstances.get('held')!;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  out.script = Array.from({ length: 10_000 }, () => ({ hold: released }));

  const totalBytes = async () =>
    sample(await e.metrics(), 'fluentd_output_status_buffer_total_bytes', { plugin_id: 'held' }).value;
  let maxBytes = 0;
  let scrapes = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      maxBytes = Math.max(maxBytes, await totalBytes().catch(() => 0));
      scrapes += 1;
      await sleep(20);
    }
  })();

  const acked = new Set<string>();
  let refused = 0;
  const otherStatuses: number[] = [];
  const retryAfters = new Set<string | null>();
  const sender = async (s: number) => {
    let n = 0;
    for (let done = 0; done < QUOTA; ) {
      const ids = Array.from({ length: RECORDS_PER_REQUEST }, (_, i) => `${s}-${n}-${i}`);
      const res = await postJson(
        port,
        'app.crowd',
        ids.map((id) => ({ id, pad: PAD })),
      );
      await res.arrayBuffer();
      if (res.ok) {
        for (const id of ids) acked.add(id);
        done += 1;
        n += 1;
      } else if (res.status === 503) {
        refused += 1;
        retryAfters.add(res.headers.get('retry-after'));
        await sleep(50 + Math.random() * 100);
      } else {
        otherStatuses.push(res.status);
        return;
      }
    }
  };

  try {
    const senders = Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
    // Full, and refusing, while the output holds its first chunk.
    await waitFor(async () => refused >= 6 * SENDERS && (await totalBytes()) >= MiB - 128 * KiB, {
      timeoutMs: 10_000,
      what: 'a full buffer answering 503',
    });
    assert.equal(out.delivered.length, 0, 'nothing delivered while held');
    release();
    await senders;
    await waitFor(() => out.delivered.length >= acked.size, {
      timeoutMs: 10_000,
      what: `${acked.size} records delivered (have ${out.delivered.length})`,
    });
    await waitFor(async () => (await totalBytes()) === 0, { what: 'an empty buffer' });
    watching = false;
    await watcher;

    console.log(
      `max buffer_total_bytes ${maxBytes} (limit ${MiB}, +1 chunk ${MiB + 128 * KiB}) over ${scrapes} scrapes; ${refused} answers 503`,
    );
    assert.deepEqual(otherStatuses, [], 'only 2xx and 503');
    assert.deepEqual([...retryAfters], ['1'], 'every 503 says Retry-After');
    assert.ok(scrapes > 20, `${scrapes} scrapes`);
    assert.ok(maxBytes <= MiB + 128 * KiB, `buffer held ${maxBytes} bytes, over 1 MiB + 128 KiB`);
    // In one process admission is exact: room is taken before staging, so not even one chunk over.
    assert.ok(maxBytes <= MiB, `buffer held ${maxBytes} bytes, over total_limit_size`);
    // Every acked record delivered, once; nothing refused was kept.
    const delivered = out.delivered.map((d) => d.record.id as string);
    assert.equal(delivered.length, acked.size);
    assert.equal(new Set(delivered).size, delivered.length, 'no record delivered twice');
    assert.deepEqual(new Set(delivered), acked);
    assert.equal(acked.size, SENDERS * QUOTA * RECORDS_PER_REQUEST);
  } finally {
    watching = false;
    release();
    await watcher.catch(() => {});
    await e.stop();
  }
}

describe('http input: 50 senders against a 1 MiB buffer whose output is held', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis?.stop();
  });

  it('memory buffer: never more than 1 MiB + one chunk; every acked record delivered', async () => {
    await crowd('');
  });

  it('redis buffer: never more than 1 MiB + one chunk; every acked record delivered', async () => {
    await crowd(`type: redis, redis_url: "${redis.url}", recovery_timeout: 3s`);
  });
});
