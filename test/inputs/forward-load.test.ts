import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { pack } from '../../src/core/msgpack.ts';
import {
  encodeForwardMode,
  encodeMessageMode,
  encodePackedForward,
} from '../../src/protocol/forward/modes.ts';
import { metricValue, RawClient, startForward, stopAllForward } from '../support/forward-client.ts';
import { rng } from '../support/msgpack-gen.ts';
import { waitFor } from '../support/wait.ts';

after(stopAllForward);

const T = new EventTime(1700000000, 1);
const lbl = { plugin_id: 'fwd', type: 'forward' };

/** Runs `fn` over `items`, at most `limit` at a time. */
async function pool<T>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

describe('forward input — 1,000 concurrent connections on loopback', () => {
  it('holds 1,000 open connections, acks a message on each, and counts them', async () => {
    const h = await startForward();
    const n = 1000;
    const clients: RawClient[] = [];
    await pool(
      Array.from({ length: n }, (_, i) => i),
      100,
      async (i) => {
        clients[i] = await RawClient.connect({ port: h.port });
      },
    );
    await waitFor(() => h.input.connectionCount === n, { what: `${n} open connections`, timeoutMs: 10_000 });
    assert.equal(await metricValue(h.metrics.forwardConnections, lbl), n);
    // Every connection sends at once; every one gets its own ack.
    await Promise.all(clients.map((c, i) => c.send(encodeMessageMode('load', T, { i }, { chunk: `c${i}` }))));
    await Promise.all(
      clients.map(async (c, i) => assert.deepEqual(await c.frame(0, 10_000), { ack: `c${i}` })),
    );
    assert.equal(h.batches.length, n);
    const seen = new Set(h.batches.map((b) => Buffer.from(b.payload).toString('hex')));
    assert.equal(seen.size, n, 'no message lost or doubled');
    for (const c of clients) c.close();
    await waitFor(() => h.input.connectionCount === 0, { what: 'all closed', timeoutMs: 10_000 });
    assert.equal(await metricValue(h.metrics.forwardConnections, lbl), 0);
  });
});

describe('forward input — fuzz against a live listener', () => {
  it('random and mutated frames: the listener stays up, memory bounded, a valid sender loses nothing', async () => {
    const seed = Number(process.env.FORWARD_FUZZ_SEED ?? Date.now() % 1_000_000);
    const rand = rng(seed);
    const int = (n: number) => Math.floor(rand() * n);
    const h = await startForward({
      max_message_size: '1MiB',
      max_decompressed_size: '4MiB',
      max_nesting_depth: 32,
    });
    const payload = makeBatch('x', [
      { time: T, record: { log: 'a', n: 1 } },
      { time: T, record: { log: 'b', nested: { k: [1, 2, 3] } }, metadata: { m: 1 } },
    ]).payload;
    const valid = [
      encodeMessageMode('v', T, { a: 1, s: 'x'.repeat(50) }, { chunk: 'ok' }),
      encodeForwardMode('v', [{ time: T, record: { b: 2 } }], { chunk: 'ok', size: 1 }),
      encodePackedForward('v', payload, { chunk: 'ok', size: 2 }),
      encodePackedForward('v', gzipSync(payload), { compressed: 'gzip', chunk: 'ok' }),
      Buffer.from('["v",1700000000,{"j":1},{"chunk":"ok"}]'),
    ];
    const bomb = gzipSync(Buffer.alloc(64 << 20)); // 64 MiB of zeros, ~64 KiB compressed
    const generators: (() => Buffer)[] = [
      // truncated valid frame
      () => {
        const v = valid[int(valid.length)]!;
        return v.subarray(0, 1 + int(v.length - 1));
      },
      // mutated valid frame: a few bytes flipped
      () => {
        const v = Buffer.from(valid[int(valid.length)]!);
        for (let k = 0; k < 1 + int(4); k++) v[int(v.length)] = int(256);
        return v;
      },
      // random bytes
      () => Buffer.from(Array.from({ length: 1 + int(256) }, () => int(256))),
      // wrong types in every position
      () =>
        pack(
          [
            ['t', 'not-a-time', {}],
            [1, 2, 3],
            ['t', [[{}, {}]]],
            ['t', [['x', 1]]],
            { tag: 't' },
            ['t', 1, [1, 2]],
            ['t', null, 'rec', 5],
            ['t', true],
          ][int(8)],
        ),
      // huge length prefixes: str32, bin32, array32, map32, ext32
      () =>
        Buffer.from([
          0x93,
          0xa1,
          0x74,
          [0xdb, 0xc6, 0xdd, 0xdf, 0xc9][int(5)]!,
          0x7f,
          0xff,
          0xff,
          0xf0,
          0x00,
        ]),
      // deep nesting, arrays and maps
      () =>
        rand() < 0.5
          ? Buffer.alloc(10_000, 0x91)
          : Buffer.concat([
              Buffer.from([0x93, 0xa1, 0x74, 0x01]),
              Buffer.alloc(5_000, 0x81).fill(0xa0, 0, 0),
            ]),
      // gzip bomb
      () => encodePackedForward('bomb', bomb, { compressed: 'gzip', chunk: 'bomb' }),
      // a valid packed frame whose payload is garbage
      () => encodePackedForward('t', Buffer.from(Array.from({ length: 64 }, () => int(256)))),
    ];

    // The valid sender, on its own connection, throughout.
    const sender = await RawClient.connect({ port: h.port });
    const messages = 200;
    let sent = 0;
    const sending = (async () => {
      for (; sent < messages; sent++) {
        await sender.send(encodeMessageMode('valid', T, { seq: sent }, { chunk: `v${sent}` }));
        if (sent % 20 === 19) await sender.frame(sent, 10_000);
      }
    })();

    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const frames = 400;
    await pool(
      Array.from({ length: frames }, (_, i) => i),
      16,
      async () => {
        const bytes = generators[int(generators.length)]!();
        const c = await RawClient.connect({ port: h.port });
        await c.send(bytes).catch(() => {});
        c.socket.end();
        await c.waitClosed(10_000);
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      },
    );
    await sending;
    for (let i = 0; i < messages; i++)
      assert.deepEqual(await sender.frame(i, 10_000), { ack: `v${i}` }, `seed ${seed}: ack ${i}`);
    const validRecords = h.batches.filter((b) => b.tag === 'valid').reduce((n, b) => n + b.count, 0);
    assert.equal(validRecords, messages, `seed ${seed}: the valid sender lost nothing`);
    assert.equal(sender.closed, false, `seed ${seed}: the valid connection stayed open`);
    await waitFor(() => h.input.connectionCount === 1, { what: 'fuzz connections gone', timeoutMs: 10_000 });
    assert.ok(
      (await metricValue(h.metrics.forwardBadFrames, lbl)) > frames / 4,
      `seed ${seed}: bad frames were counted`,
    );
    const growth = peakRss - rssBefore;
    assert.ok(growth < 400 * 1024 * 1024, `seed ${seed}: RSS grew ${Math.round(growth / 1048576)} MiB`);
    assert.ok(h.input.ready());
    sender.close();
  });
});
