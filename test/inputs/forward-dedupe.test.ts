import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkDedupe, SLOT_OVERHEAD } from '../../src/inputs/forward/dedupe.ts';

describe('forward chunk dedupe', () => {
  it('claims a new chunk, remembers it once buffered, forgets it after the window', () => {
    const d = new ChunkDedupe(1000);
    assert.deepEqual(d.begin('a', 0), { state: 'new' });
    d.done('a', 10);
    assert.deepEqual(d.begin('a', 500), { state: 'done' });
    // The window runs from `done`, not from `begin`.
    assert.deepEqual(d.begin('a', 1005), { state: 'done' });
    assert.deepEqual(d.begin('a', 1011), { state: 'new' });
  });

  it('a failed chunk is forgotten at once, so its re-send is emitted', () => {
    const d = new ChunkDedupe(1000);
    d.begin('a', 0);
    d.fail('a');
    assert.deepEqual(d.begin('a', 1), { state: 'new' });
    assert.equal(d.size, 1);
  });

  it('a copy arriving while the first is emitted waits for its outcome', async () => {
    const d = new ChunkDedupe(1000);
    d.begin('ok', 0);
    d.begin('bad', 0);
    const ok = d.begin('ok', 1);
    const bad = d.begin('bad', 1);
    assert.equal(ok.state, 'pending');
    assert.equal(bad.state, 'pending');
    d.done('ok', 2);
    d.fail('bad');
    assert.equal(await (ok as { settled: Promise<boolean> }).settled, true);
    assert.equal(await (bad as { settled: Promise<boolean> }).settled, false);
    assert.deepEqual(d.begin('ok', 3), { state: 'done' });
    assert.deepEqual(d.begin('bad', 3), { state: 'new' });
  });

  it('past maxEntries the oldest go first, and a pending one pushed out lets its waiters retry', async () => {
    const d = new ChunkDedupe(60_000, 3);
    d.begin('pending', 0);
    const waiting = d.begin('pending', 0) as { settled: Promise<boolean> };
    for (const k of ['b', 'c']) {
      d.begin(k, 1);
      d.done(k, 1);
    }
    d.begin('d', 2);
    assert.equal(d.size, 3);
    assert.equal(await waiting.settled, false);
    // Full: a claim first makes room (b goes), then finds c.
    assert.deepEqual(d.begin('c', 3), { state: 'done' });
    assert.deepEqual(d.begin('b', 3), { state: 'new' });
    // Pushed out while emitted, then buffered: known again as the newest.
    d.done('pending', 4);
    assert.deepEqual(d.begin('pending', 5), { state: 'done' });
    assert.ok(d.size <= 3);
  });

  it('is bounded in bytes too: long ids push the oldest out long before maxEntries', () => {
    const maxBytes = 64 * 1024;
    const d = new ChunkDedupe(60_000, 65_536, maxBytes);
    const id = (i: number) => `${i}`.padEnd(1000, 'x');
    for (let i = 0; i < 1000; i++) {
      d.begin(id(i), i);
      d.done(id(i), i);
    }
    // One id past the bound at most: the check runs before each new id is taken.
    assert.ok(d.bytes <= maxBytes + SLOT_OVERHEAD + 1000, `held ${d.bytes} bytes`);
    assert.ok(d.size < 70, `held ${d.size} ids`);
    assert.deepEqual(d.begin(id(999), 1000), { state: 'done' });
    assert.deepEqual(d.begin(id(0), 1000), { state: 'new' });
    // Forgetting gives the bytes back.
    d.fail(id(0));
    const before = d.bytes;
    d.fail(id(999));
    assert.equal(d.bytes, before - SLOT_OVERHEAD - 1000);
  });

  it('stays bounded with a new chunk per message far past maxEntries, keeping the newest', () => {
    const d = new ChunkDedupe(300_000);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const key = `tag\u0000${i}`;
      assert.equal(d.begin(key, i).state, 'new');
      if (i % 7 === 0) d.fail(key);
      else d.done(key, i);
    }
    assert.ok(d.size <= 65_536, `size ${d.size}`);
    // A recent chunk is still known; an old one was let go.
    assert.deepEqual(d.begin(`tag\u0000${n - 1}`, n), { state: 'done' });
    assert.deepEqual(d.begin('tag\u00001', n), { state: 'new' });
  });
});
