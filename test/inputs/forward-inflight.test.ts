import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { encodeForwardMode, encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { startEstuary } from '../support/estuary.ts';
import { RawClient } from '../support/forward-client.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';

const KiB = 1024;
const T = new EventTime(1700000000, 0);

describe('forward input — in-flight budget (service.max_inflight_bytes)', () => {
  const clients: RawClient[] = [];
  const running: { stop(): Promise<void> }[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(running.map((e) => e.stop()));
  });

  it('many pipelining senders against a blocked output: held bytes stay under the limit + one message, and every acked record is delivered', async () => {
    const LIMIT = 512 * KiB;
    const SENDERS = 12;
    const MESSAGES = 6;
    const ENTRIES = 20;
    const port = await freePort();
    const e = await startEstuary(`
service:
  max_inflight_bytes: 512KiB
  shutdown_timeout: 2s
  buffer: { type: memory, total_limit_size: 256KiB, chunk_limit_size: 128KiB, flush_interval: 50ms }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: scripted, id: out }
`);
    running.push(e);
    const out = scriptedInstances.get('out')!;
    let unblock!: () => void;
    out.script.push({ hold: new Promise<void>((r) => (unblock = r)) });

    // Messages of ~100 KiB, larger than one socket read, so most are framed over several reads.
    const messages = Array.from({ length: SENDERS }, (_, s) =>
      Array.from({ length: MESSAGES }, (_, m) =>
        encodeForwardMode(
          'budget',
          Array.from({ length: ENTRIES }, (_, i) => ({
            time: T,
            record: { s, m, i, pad: 'x'.repeat(5 * KiB) },
          })),
          { chunk: `s${s}m${m}` },
        ),
      ),
    );
    const largest = Math.max(...messages.flat().map((m) => m.length));
    assert.ok(largest > 64 * KiB && largest < 128 * KiB);

    let sampled = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        sampled = Math.max(sampled, sample(await e.metrics(), 'estuary_inflight_bytes').value);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    for (let s = 0; s < SENDERS; s++) clients.push(await RawClient.connect({ port }));
    // Every sender writes all its messages at once, without waiting for acks (as Fluentd may).
    const sends = clients.map((c, s) => c.send(Buffer.concat(messages[s]!)));

    // The output holds its first write: the buffer fills, emits wait, reads stop for want of room.
    await waitFor(() => e.app.inflight.waiting > 0, { what: 'senders waiting for in-flight room' });
    await waitFor(async () => sample(await e.metrics(), 'estuary_inflight_bytes').value > LIMIT / 2, {
      what: 'the budget used',
    });
    assert.equal(out.delivered.length, 0);

    unblock();
    await Promise.all(sends);
    for (const c of clients)
      await waitFor(() => c.frames.length === MESSAGES, { timeoutMs: 20_000, what: 'every ack' });
    sampling = false;
    await sampler;

    const bound = LIMIT + largest;
    assert.ok(e.app.inflight.peak <= bound, `peak ${e.app.inflight.peak} > ${bound}`);
    assert.ok(sampled <= bound && sampled > LIMIT / 2, `sampled gauge ${sampled}`);
    // Every acked message is delivered once the output is released, none twice.
    await waitFor(() => out.delivered.length === SENDERS * MESSAGES * ENTRIES, {
      timeoutMs: 20_000,
      what: 'every acked record delivered',
    });
    const keys = new Set(out.delivered.map(({ record }) => `${record.s}/${record.m}/${record.i}`));
    assert.equal(keys.size, SENDERS * MESSAGES * ENTRIES);
    await waitFor(() => e.app.inflight.bytes === 0, { what: 'everything given back' });
  });

  it('takes a message larger than the whole budget when nothing else is held; a sender gone mid-message gives its bytes back', async () => {
    const port = await freePort();
    const e = await startEstuary(`
service:
  max_inflight_bytes: 64KiB
  shutdown_timeout: 2s
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: scripted, id: big }
`);
    running.push(e);
    const big = encodeForwardMode(
      'big',
      Array.from({ length: 30 }, (_, i) => ({ time: T, record: { i, pad: 'y'.repeat(10 * KiB) } })),
      { chunk: 'big' },
    );
    assert.ok(big.length > 4 * 64 * KiB);
    const alone = await RawClient.connect({ port });
    clients.push(alone);
    await alone.send(big);
    assert.deepEqual(await alone.frame(0), { ack: 'big' });
    await waitFor(() => scriptedInstances.get('big')!.delivered.length === 30, {
      what: 'the big message delivered',
    });
    await waitFor(() => e.app.inflight.bytes === 0, { what: 'its bytes given back' });

    const vanishing = await RawClient.connect({ port });
    clients.push(vanishing);
    await vanishing.send(big.subarray(0, 100 * KiB));
    await waitFor(() => e.app.inflight.bytes === 100 * KiB, { what: 'the unfinished message held' });
    vanishing.close();
    await waitFor(async () => sample(await e.metrics(), 'estuary_inflight_bytes').value === 0, {
      what: 'the unfinished message given back',
    });
  });

  it('what a compressed message inflates to is taken from the budget as it inflates, and held until it is staged', async () => {
    const LIMIT = 1024 * KiB;
    const port = await freePort();
    const e = await startEstuary(`
service:
  max_inflight_bytes: 1MiB
  shutdown_timeout: 2s
  buffer: { type: memory, flush_interval: 50ms }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${port}, max_decompressed_size: 512KiB }
outputs:
  - { type: scripted, id: zipped }
`);
    running.push(e);
    const out = scriptedInstances.get('zipped')!;
    let unblock!: () => void;
    out.script.push({ hold: new Promise<void>((r) => (unblock = r)) });
    // Four senders, each ~1 KiB of gzip that inflates to ~400 KiB: 1.6 MiB in all, counted
    // against a 1 MiB budget only if the room is taken before inflating.
    const SENDERS = 4;
    const ENTRIES = 200;
    const senders: RawClient[] = [];
    for (let s = 0; s < SENDERS; s++) senders.push(await RawClient.connect({ port }));
    clients.push(...senders);
    senders.forEach((c, s) => {
      const entries = makeBatch(
        'zipped',
        Array.from({ length: ENTRIES }, (_, i) => ({ time: T, record: { s, i, pad: 'z'.repeat(2 * KiB) } })),
      ).payload;
      const zipped = gzipSync(entries);
      assert.ok(zipped.length < 8 * KiB && entries.length > 380 * KiB);
      void c.send(
        encodePackedForward('zipped', zipped, { compressed: 'gzip', chunk: `z${s}`, size: ENTRIES }),
      );
    });
    unblock();
    for (const [s, c] of senders.entries()) assert.deepEqual(await c.frame(0), { ack: `z${s}` });
    await waitFor(() => out.delivered.length === SENDERS * ENTRIES, { what: 'every record delivered' });
    // A payload held what it inflated to (~400 KiB; its frame alone is a few KiB) until it
    // was staged, and the four together stayed within the budget plus one payload (the one
    // allowed to finish, as for a message read in pieces).
    assert.ok(e.app.inflight.peak >= 380 * KiB, `peak ${e.app.inflight.peak}`);
    assert.ok(e.app.inflight.peak <= LIMIT + 512 * KiB, `peak ${e.app.inflight.peak}`);
    await waitFor(() => e.app.inflight.bytes === 0, { what: 'the room given back' });
  });
});
