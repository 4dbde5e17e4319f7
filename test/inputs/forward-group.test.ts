import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type Batch, decodeEntries, makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import type { Emit } from '../../src/inputs/input.ts';
import {
  encodeForwardMode,
  encodeMessageMode,
  encodePackedForward,
} from '../../src/protocol/forward/modes.ts';
import { metricValue, RawClient, startForward, stopAllForward } from '../support/forward-client.ts';
import { waitFor } from '../support/wait.ts';

/**
 * Message and Forward mode messages read together are emitted as one Batch, and each is acked
 * only once that Batch is durable (Docker's log driver sends one record per message).
 */

after(stopAllForward);

const T = new EventTime(1700000000, 1);
const lbl = { plugin_id: 'fwd', type: 'forward' };
const records = (b: Batch) => decodeEntries(b.payload).map((e) => e.record);
const msg = (tag: string, n: number | string, chunk?: string) =>
  encodeMessageMode(tag, T, { n }, chunk === undefined ? undefined : { chunk });

/** An emit that records batches and holds each until released (in order). */
function gatedEmit(): { emit: Emit; batches: Batch[]; release(): void; fail: boolean } {
  const waiting: (() => void)[] = [];
  const state = {
    batches: [] as Batch[],
    fail: false,
    emit: (async (batch) => {
      state.batches.push(batch);
      await new Promise<void>((r) => waiting.push(r));
      if (state.fail) throw new Error('buffer unavailable');
    }) as Emit,
    release: () => {
      for (const r of waiting.splice(0)) r();
    },
  };
  return state;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('forward input — messages read together are emitted together', () => {
  it('one Batch for the messages of one read, in order; each acked only once it is durable', async () => {
    const gate = gatedEmit();
    const h = await startForward({}, gate.emit);
    const c = await RawClient.connect({ port: h.port });
    await c.send(Buffer.concat([msg('app', 1, 'c1'), msg('app', 2, 'c2'), msg('app', 3, 'c3')]));
    await waitFor(() => gate.batches.length === 1, { what: 'one emit' });
    await pause(100); // room for a premature ack or a second emit
    assert.equal(c.frames.length, 0, 'no ack before the batch is durable');
    assert.equal(gate.batches.length, 1);
    assert.equal(gate.batches[0]!.count, 3);
    assert.deepEqual(records(gate.batches[0]!), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    gate.release();
    assert.deepEqual(await c.frame(0), { ack: 'c1' });
    assert.deepEqual(await c.frame(1), { ack: 'c2' });
    assert.deepEqual(await c.frame(2), { ack: 'c3' });
    assert.equal(await metricValue(h.metrics.inputRecords, lbl), 3);
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'ok' }), 3);
    const latency = await h.metrics.ackLatency.get();
    const count = latency.values.find((v) => v.metricName === 'estuary_ack_latency_seconds_count');
    assert.equal(count?.value, 3, 'one ack latency per message');
    c.close();
  });

  it('a failed emit acks none of the group, closes the connection, and lets the chunks be re-sent', async () => {
    const gate = gatedEmit();
    gate.fail = true;
    const h = await startForward({}, gate.emit);
    const frames = Buffer.concat([msg('app', 1, 'f1'), msg('app', 2, 'f2'), msg('app', 3, 'f3')]);
    const c = await RawClient.connect({ port: h.port });
    await c.send(frames);
    await waitFor(() => gate.batches.length === 1, { what: 'the emit' });
    gate.release();
    await c.waitClosed();
    assert.equal(c.frames.length, 0, 'not one ack');
    assert.equal(gate.batches[0]!.count, 3);
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'error' }), 3);
    // The claims on the chunk ids were released: a re-send is buffered, not taken for a duplicate.
    gate.fail = false;
    const again = await RawClient.connect({ port: h.port });
    await again.send(frames);
    await waitFor(() => gate.batches.length === 2, { what: 'the re-sent group' });
    gate.release();
    assert.deepEqual(await again.frame(2), { ack: 'f3' });
    assert.equal(gate.batches[1]!.count, 3);
    assert.equal(await metricValue(h.metrics.forwardDuplicateChunks, lbl), 0);
    again.close();
  });

  it('dedupe in a group: a chunk buffered before or earlier in the same read is acked, not buffered twice', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    await c.send(msg('app', 0, 'seen'));
    assert.deepEqual(await c.frame(0), { ack: 'seen' });
    await c.send(
      Buffer.concat([
        msg('app', 1, 'a'),
        msg('app', 0, 'seen'), // buffered before
        msg('app', 2, 'b'),
        msg('app', 1, 'a'), // earlier in this read
        msg('app', 3, 'c'),
      ]),
    );
    await waitFor(() => c.frames.length === 6, { what: 'six acks' });
    const acks = await Promise.all([1, 2, 3, 4, 5].map((i) => c.frame(i)));
    assert.deepEqual(acks, [{ ack: 'a' }, { ack: 'seen' }, { ack: 'b' }, { ack: 'a' }, { ack: 'c' }]);
    assert.deepEqual(
      h.batches.flatMap((b) => records(b).map((r) => r.n)),
      [0, 1, 2, 3],
      'each record once, in order',
    );
    assert.equal(await metricValue(h.metrics.forwardDuplicateChunks, lbl), 2);
    c.close();
  });

  it('a chunk another connection is still emitting is waited for, between two groups', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const batches: Batch[] = [];
    const h = await startForward({}, async (batch) => {
      batches.push(batch);
      if (records(batch).some((r) => r.n === 'x')) await gate;
    });
    const first = await RawClient.connect({ port: h.port });
    await first.send(msg('app', 'x', 'x'));
    await waitFor(() => batches.length === 1, { what: 'x in flight' });
    const second = await RawClient.connect({ port: h.port });
    await second.send(Buffer.concat([msg('app', 'y', 'y'), msg('app', 'x', 'x'), msg('app', 'z', 'z')]));
    assert.deepEqual(await second.frame(0), { ack: 'y' });
    await pause(100);
    assert.equal(second.frames.length, 1, 'x waits for the first copy; z waits behind it');
    release();
    assert.deepEqual(await first.frame(0), { ack: 'x' });
    assert.deepEqual(await second.frame(1), { ack: 'x' });
    assert.deepEqual(await second.frame(2), { ack: 'z' });
    assert.deepEqual(
      batches.map((b) => records(b).map((r) => r.n)),
      [['x'], ['y'], ['z']],
    );
    first.close();
    second.close();
  });

  it('a new tag or another mode starts another batch; the order of records is kept', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    const packed = makeBatch('x', [{ time: T, record: { n: 'p' } }]).payload;
    await c.send(
      Buffer.concat([
        msg('a', 1),
        encodeForwardMode('a', [
          { time: T, record: { n: 2 } },
          { time: T, record: { n: 3 } },
        ]),
        msg('b', 4),
        msg('a', 5),
        encodePackedForward('a', packed),
        msg('a', 6, 'last'),
      ]),
    );
    assert.deepEqual(await c.frame(0), { ack: 'last' });
    assert.deepEqual(
      h.batches.map((b) => [b.tag, records(b).map((r) => r.n)]),
      [
        ['a', [1, 2, 3]],
        ['b', [4]],
        ['a', [5]],
        ['a', ['p']],
        ['a', [6]],
      ],
    );
    c.close();
  });

  it('while a group waits on a full buffer, nothing more is emitted; what arrives meanwhile follows in order', async () => {
    const gate = gatedEmit();
    const h = await startForward({}, gate.emit);
    const c = await RawClient.connect({ port: h.port });
    await c.send(Buffer.concat([msg('app', 1, 'k1'), msg('app', 2, 'k2')]));
    await waitFor(() => gate.batches.length === 1, { what: 'first group' });
    await c.send(Buffer.concat([msg('app', 3, 'k3'), msg('app', 4, 'k4')]));
    await c.send(msg('app', 5, 'k5'));
    await pause(100);
    assert.equal(gate.batches.length, 1, 'blocked: no second emit');
    assert.equal(c.frames.length, 0);
    // Released one emit at a time until the last ack: the rest may come in one read or two.
    await waitFor(
      () => {
        gate.release();
        return c.frames.length === 5;
      },
      { what: 'all acked' },
    );
    assert.deepEqual(await c.frame(4), { ack: 'k5' });
    assert.deepEqual(
      gate.batches.flatMap((b) => records(b).map((r) => r.n)),
      [1, 2, 3, 4, 5],
    );
    c.close();
  });

  it('groups are bounded: 1,024 messages or 1 MiB of frames at most per emit', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    const n = 3000;
    await c.send(
      Buffer.concat(Array.from({ length: n }, (_, i) => msg('app', i, i === n - 1 ? 'end' : undefined))),
    );
    assert.deepEqual(await c.frame(0), { ack: 'end' });
    assert.ok(h.batches.length >= 3, `${h.batches.length} batches`);
    assert.ok(h.batches.every((b) => b.count <= 1024));
    assert.deepEqual(
      h.batches.flatMap((b) => records(b).map((r) => r.n)),
      Array.from({ length: n }, (_, i) => i),
    );
    const big = 'x'.repeat(300 * 1024);
    const before = h.batches.length;
    await c.send(
      Buffer.concat(
        Array.from({ length: 7 }, (_, i) => msg('big', big.slice(i), i === 6 ? 'big' : undefined)),
      ),
    );
    assert.deepEqual(await c.frame(1), { ack: 'big' });
    const bigBatches = h.batches.slice(before);
    assert.equal(
      bigBatches.reduce((s, b) => s + b.count, 0),
      7,
    );
    assert.ok(bigBatches.length >= 3, `${bigBatches.length} batches`);
    assert.ok(bigBatches.every((b) => b.bytes <= 1024 * 1024));
    c.close();
  });

  it('the messages before a bad frame are emitted together and acked; the connection then closes', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    await c.send(Buffer.concat([msg('app', 1, 'b1'), msg('app', 2, 'b2'), Buffer.from([0xc1])]));
    assert.deepEqual(await c.frame(0), { ack: 'b1' });
    assert.deepEqual(await c.frame(1), { ack: 'b2' });
    await c.waitClosed();
    assert.deepEqual(
      h.batches.map((b) => b.count),
      [2],
    );
  });

  it('JSON mode messages are grouped too, and acked in JSON', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port }, true);
    await c.send(
      '["app",1700000000,{"n":1},{"chunk":"j1"}]["app",1700000001,{"n":2},{"chunk":"j2"}]["app",[[1700000002,{"n":3}]],{"chunk":"j3"}]',
    );
    await waitFor(() => c.texts.join('') === '{"ack":"j1"}{"ack":"j2"}{"ack":"j3"}', { what: 'JSON acks' });
    assert.deepEqual(
      h.batches.map((b) => records(b).map((r) => r.n)),
      [[1, 2, 3]],
    );
    c.close();
  });

  it('keepalive false: only the first message is taken and acked, none joined to it', async () => {
    const h = await startForward({ keepalive: false });
    const c = await RawClient.connect({ port: h.port });
    await c.send(Buffer.concat([msg('app', 1, 'one'), msg('app', 2, 'two')]));
    assert.deepEqual(await c.frame(0), { ack: 'one' });
    await c.waitClosed();
    assert.equal(c.frames.length, 1);
    assert.deepEqual(
      h.batches.map((b) => records(b).map((r) => r.n)),
      [[1]],
    );
  });

  it('source_address_key is set in every record of a group', async () => {
    const h = await startForward({ source_address_key: 'ip' });
    const c = await RawClient.connect({ port: h.port });
    await c.send(Buffer.concat([msg('app', 1), msg('app', 2, 'ip')]));
    assert.deepEqual(await c.frame(0), { ack: 'ip' });
    assert.equal(h.batches.length, 1);
    const all = h.batches.flatMap(records);
    assert.deepEqual(all, [
      { n: 1, ip: '127.0.0.1' },
      { n: 2, ip: '127.0.0.1' },
    ]);
    c.close();
  });
});
