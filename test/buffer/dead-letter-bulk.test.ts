import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { z } from 'zod';
import { makeBatch, toEntry } from '../../src/core/batch.ts';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { unpackr } from '../../src/core/msgpack.ts';
import type { Chunk, Output, Rejection, WriteResult } from '../../src/outputs/output.ts';
import { defineComponent } from '../../src/registry.ts';
import { startEstuary } from '../support/estuary.ts';
import { emitTo } from '../support/outputs.ts';
import { RedisServer } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

/**
 * One chunk of 100,000 records that the sink refuses, all of them: the driver moves them to
 * the dead-letter queue well under a second after the write returns, and the process stays
 * responsive meanwhile (/healthz, polled every 20 ms from another thread, answers within
 * 100 ms). One reason (the chunk moves as it is stored) and two alternating reasons (the
 * grouped path: one dead-letter chunk per reason), over the memory and redis stores.
 *
 * The sink here decodes the chunk in slices, yielding between them, as a well-behaved output
 * would: `chunk.entries()` decodes 100,000 entries in one go (90–300 ms on this machine), and
 * what is measured is what the driver and the store add, not the output's own decoding. For
 * the same reason the records are staged as inputs stage them, 1,000 at a time (one 6 MB
 * batch alone takes ~100 ms to frame and send to Redis).
 */

const RECORDS = 100_000;

/** `type: refusing`: refuses every entry, for `reasons` in turn; notes when its write returns. */
class RefusingOutput implements Output {
  readonly type = 'refusing';
  readonly id: string;
  reasons: string[] = ['mapper_parsing_exception'];
  writeEnded: number | undefined;
  writes = 0;

  constructor(id: string) {
    this.id = id;
  }

  async write(chunk: Chunk): Promise<WriteResult> {
    this.writes += 1;
    const reject: Rejection[] = [];
    for await (const part of slices(chunk, 2000))
      for (const entry of part)
        reject.push({ entry, reason: this.reasons[reject.length % this.reasons.length]! });
    this.writeEnded = performance.now();
    return { reject };
  }
}

/** The chunk's entries, decoded `size` at a time with a turn of the event loop in between. */
async function* slices(chunk: Chunk, size: number): AsyncGenerator<TaggedEntry[]> {
  for (const batch of chunk.batches) {
    let offset = 0;
    while (offset < batch.payload.length) {
      const part: TaggedEntry[] = [];
      const from = offset;
      unpackr.unpackMultiple(
        batch.payload.subarray(from),
        (value: unknown, _start?: number, end?: number) => {
          const entry = toEntry(value);
          if (entry) part.push({ ...entry, tag: batch.tag });
          offset = from + end!;
          return part.length < size;
        },
      );
      yield part;
      await yieldToLoop();
    }
  }
}

const refusing = new Map<string, RefusingOutput>();
const refusingOutput = defineComponent({
  kind: 'output',
  type: 'refusing',
  schema: z.strictObject({}),
  create(_config, deps) {
    const out = new RefusingOutput(deps.id);
    refusing.set(deps.id, out);
    return out;
  },
});

/**
 * A client of /healthz in a thread of its own (the Estuary's event loop cannot delay its
 * clock): a request every 20 ms, reporting the slowest answer once told to stop.
 */
function pollHealthz(url: string): {
  ready: Promise<void>;
  stop: () => Promise<{ max: number; count: number; failures: number }>;
} {
  const worker = new Worker(
    `
const { parentPort, workerData } = require('node:worker_threads');
let stopping = false;
parentPort.on('message', () => { stopping = true; });
(async () => {
  let max = 0, count = 0, failures = 0;
  for (let warm = 0; warm < 3; warm++) await (await fetch(workerData.url)).text();
  parentPort.postMessage({ ready: true });
  while (!stopping) {
    const started = performance.now();
    try {
      const res = await fetch(workerData.url);
      await res.text();
      if (!res.ok) failures++;
    } catch { failures++; }
    max = Math.max(max, performance.now() - started);
    count++;
    await new Promise((r) => setTimeout(r, 20));
  }
  parentPort.postMessage({ max, count, failures });
})();
`,
    { eval: true, workerData: { url } },
  );
  let onReady!: () => void;
  const ready = new Promise<void>((resolve) => {
    onReady = resolve;
  });
  let onResult!: (r: { max: number; count: number; failures: number }) => void;
  const result = new Promise<{ max: number; count: number; failures: number }>((resolve) => {
    onResult = resolve;
  });
  worker.on('message', (m: { ready?: boolean; max: number; count: number; failures: number }) => {
    if (m.ready) onReady();
    else onResult(m);
  });
  return {
    ready,
    stop: async () => {
      worker.postMessage('stop');
      const r = await result;
      await worker.terminate();
      return r;
    },
  };
}

function startBulk(serviceBuffer: string) {
  return startEstuary(
    `
service:
  buffer: { ${serviceBuffer} }
outputs:
  - type: refusing
    id: bulk
    match: "**"
    buffer:
      chunk_limit_size: 32MiB
      chunk_limit_records: ${RECORDS}
      flush_interval: 10s
`,
    {},
    [refusingOutput],
  );
}

// Built once (encoding 100,000 entries takes a few hundred ms), before any clock runs: 100
// batches of 1,000, as inputs stage them, that fill one chunk (chunk_limit_records 100,000).
const BATCH = 1000;
const batches = Array.from({ length: RECORDS / BATCH }, (_, b) =>
  makeBatch(
    'app.bulk',
    Array.from({ length: BATCH }, (_, j) => {
      const i = b * BATCH + j;
      return {
        time: new EventTime(1_800_000_000 + b, j),
        record: { n: i, level: 'info', msg: 'user signed in', duration_ms: i % 100 },
      };
    }),
  ),
);

interface Figures {
  /** From the write's return to the dead-letter queue listing every record. */
  deadLetteredMs: number;
  /** The slowest /healthz answer over the whole run (staging, write, dead-lettering). */
  healthzMaxMs: number;
}

async function deadLetterBulk(serviceBuffer: string, reasons: string[]): Promise<Figures> {
  const e = await startBulk(serviceBuffer);
  const poller = pollHealthz(e.healthz);
  try {
    const out = refusing.get('bulk')!;
    out.reasons = reasons;
    const buffer = e.app.buffer('bulk')!;
    await poller.ready;

    // Batch by batch, each in a turn of the event loop of its own, as requests arrive.
    for (const batch of batches) {
      await emitTo(buffer, batch);
      await yieldToLoop();
    }
    await waitFor(() => out.writeEnded !== undefined, { timeoutMs: 10_000, what: 'the write to return' });
    const writeEnded = out.writeEnded!;
    const dead = await waitFor(
      async () => {
        const list = await buffer.deadLetter.list();
        return list.reduce((n, d) => n + d.count, 0) === RECORDS ? list : undefined;
      },
      { timeoutMs: 5000, intervalMs: 2, what: `${RECORDS} records in the dead-letter queue` },
    );
    const deadLetteredMs = performance.now() - writeEnded;
    const healthz = await poller.stop();

    console.log(
      `${serviceBuffer.includes('redis') ? 'redis' : 'memory'}, ${reasons.length} reason(s): dead-lettered ${deadLetteredMs.toFixed(0)} ms after the write returned; /healthz slowest ${healthz.max.toFixed(1)} ms over ${healthz.count} requests`,
    );
    assert.equal(out.writes, 1, 'one chunk, one write: refused entries are never retried');
    assert.deepEqual(
      dead.map((d) => [d.reason, d.count]).sort(),
      reasons.map((r) => [r, RECORDS / reasons.length]).sort(),
    );
    assert.equal(healthz.failures, 0);
    assert.ok(healthz.count >= 5, `${healthz.count} /healthz requests`);
    await buffer.refreshStats?.();
    const stats = buffer.stats();
    assert.equal(stats.queueLength + stats.stageLength, 0, 'nothing left in the buffer');
    assert.equal(stats.deadLetterRecords, RECORDS);
    return { deadLetteredMs, healthzMaxMs: healthz.max };
  } finally {
    await poller.stop().catch(() => {});
    await e.stop();
  }
}

const ONE = ['mapper_parsing_exception'];
const TWO = ['mapper_parsing_exception', 'illegal_argument_exception'];

/**
 * Under a second to the dead-letter queue, and the event loop never held for 100 ms: with one
 * reason the chunk moves as it is stored; with several, each group is re-encoded a slice at
 * a time.
 */
function assertFast(f: Figures): void {
  assert.ok(
    f.deadLetteredMs < 1000,
    `dead-lettered ${f.deadLetteredMs.toFixed(0)} ms after the write returned`,
  );
  assert.ok(f.healthzMaxMs < 100, `/healthz took ${f.healthzMaxMs.toFixed(1)} ms`);
}

describe('100,000 records refused at once: dead-lettered in well under a second, /healthz stays fast', () => {
  let redis: RedisServer;
  const redisBuffer = () => `type: redis, redis_url: "${redis.url}", recovery_timeout: 3s`;
  before(async () => {
    redis = await RedisServer.start();
  });
  after(async () => {
    await redis?.stop();
  });

  it('memory, one reason (the chunk moves as it is stored)', async () => {
    assertFast(await deadLetterBulk('', ONE));
  });

  it('memory, two alternating reasons (one dead-letter chunk per reason)', async () => {
    assertFast(await deadLetterBulk('', TWO));
  });

  it('redis, one reason', async () => {
    assertFast(await deadLetterBulk(redisBuffer(), ONE));
  });

  it('redis, two alternating reasons', async () => {
    await redis.command('FLUSHALL');
    assertFast(await deadLetterBulk(redisBuffer(), TWO));
  });
});
