import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkDedupe, type DedupeKey } from '../../src/inputs/forward/dedupe.ts';

/** A chunk id under tag `t`, or under `tag` when given. */
function k(id: string, tag = 't'): DedupeKey {
  return { tag, chunk: Buffer.from(id, 'latin1') };
}

describe('forward chunk dedupe', () => {
  it('claims a new chunk, remembers it once buffered, forgets it after the window', () => {
    const d = new ChunkDedupe(1000);
    assert.deepEqual(d.begin(k('a'), 0), { state: 'new' });
    d.done(k('a'), 10);
    assert.deepEqual(d.begin(k('a'), 500), { state: 'done' });
    // The window runs from `done`, not from `begin`.
    assert.deepEqual(d.begin(k('a'), 1005), { state: 'done' });
    assert.deepEqual(d.begin(k('a'), 1011), { state: 'new' });
  });

  it('a failed chunk is forgotten at once, so its re-send is emitted', () => {
    const d = new ChunkDedupe(1000);
    d.begin(k('a'), 0);
    d.fail(k('a'));
    assert.deepEqual(d.begin(k('a'), 1), { state: 'new' });
    assert.equal(d.size, 1);
  });

  it('a copy arriving while the first is emitted waits for its outcome', async () => {
    const d = new ChunkDedupe(1000);
    d.begin(k('ok'), 0);
    d.begin(k('bad'), 0);
    const ok = d.begin(k('ok'), 1);
    const bad = d.begin(k('bad'), 1);
    assert.equal(ok.state, 'pending');
    assert.equal(bad.state, 'pending');
    d.done(k('ok'), 2);
    d.fail(k('bad'));
    assert.equal(await (ok as { settled: Promise<boolean> }).settled, true);
    assert.equal(await (bad as { settled: Promise<boolean> }).settled, false);
    assert.deepEqual(d.begin(k('ok'), 3), { state: 'done' });
    assert.deepEqual(d.begin(k('bad'), 3), { state: 'new' });
  });

  it('past maxEntries the oldest go first, and a pending one pushed out lets its waiters retry', async () => {
    const d = new ChunkDedupe(60_000, 3);
    d.begin(k('pending'), 0);
    const waiting = d.begin(k('pending'), 0) as { settled: Promise<boolean> };
    for (const id of ['b', 'c']) {
      d.begin(k(id), 1);
      d.done(k(id), 1);
    }
    d.begin(k('d'), 2);
    assert.equal(d.size, 3);
    assert.equal(await waiting.settled, false);
    // Full: a claim first makes room (b goes), then finds c.
    assert.deepEqual(d.begin(k('c'), 3), { state: 'done' });
    assert.deepEqual(d.begin(k('b'), 3), { state: 'new' });
    // Pushed out while emitted, then buffered: known again as the newest.
    d.done(k('pending'), 4);
    assert.deepEqual(d.begin(k('pending'), 5), { state: 'done' });
    assert.ok(d.size <= 3);
  });

  it('tells ids apart by every byte and by tag, long ids included', () => {
    const d = new ChunkDedupe(60_000);
    const long = 'x'.repeat(100);
    for (const key of [k(long), k(`${long}y`), k('ab'), k('ab', 'other'), k('')]) {
      assert.deepEqual(d.begin(key, 0), { state: 'new' });
      d.done(key, 0);
    }
    assert.deepEqual(d.begin(k(long), 1), { state: 'done' });
    assert.deepEqual(d.begin(k(`${long}y`), 1), { state: 'done' });
    assert.deepEqual(d.begin(k(`${long}z`), 1), { state: 'new' });
    assert.deepEqual(d.begin(k('ab', 'other'), 1), { state: 'done' });
    assert.deepEqual(d.begin(k('ab', 'third'), 1), { state: 'new' });
    assert.deepEqual(d.begin(k('a'), 1), { state: 'new' });
    // The caller's buffer is not kept: changing it afterwards changes nothing.
    const id = Buffer.from('mutable');
    d.begin({ tag: 't', chunk: id }, 2);
    d.done({ tag: 't', chunk: id }, 2);
    id.fill(0);
    assert.deepEqual(d.begin(k('mutable'), 3), { state: 'done' });
  });

  it('finds every id after many are forgotten out of order (holes, growth, wrap-around)', () => {
    const d = new ChunkDedupe(1_000_000, 5000);
    const live = new Set<number>();
    let now = 0;
    for (let i = 0; i < 40_000; i++) {
      now++;
      d.begin(k(`id-${i}`), now);
      if (i % 3 === 0) d.fail(k(`id-${i}`));
      else {
        d.done(k(`id-${i}`), now);
        live.add(i);
      }
      if (i % 997 === 0) {
        // Everything recent is still known; the table never loses an entry to a removal.
        for (let j = Math.max(0, i - 3000); j <= i; j++) {
          const state = d.begin(k(`id-${j}`), now).state;
          if (live.has(j)) assert.equal(state, 'done', `id-${j} at ${i}`);
          else {
            assert.equal(state, 'new', `id-${j} at ${i}`);
            d.fail(k(`id-${j}`));
          }
        }
      }
    }
    assert.ok(d.size <= 5000, `size ${d.size}`);
  });

  it('stays bounded with a new chunk per message far past maxEntries, keeping the newest', () => {
    const d = new ChunkDedupe(300_000);
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const key = k(`${i}`);
      assert.equal(d.begin(key, i).state, 'new');
      if (i % 7 === 0) d.fail(key);
      else d.done(key, i);
    }
    assert.ok(d.size <= 65_536, `size ${d.size}`);
    // A recent chunk is still known; an old one was let go.
    assert.deepEqual(d.begin(k(`${n - 1}`), n), { state: 'done' });
    assert.deepEqual(d.begin(k('tag\u00001'), n), { state: 'new' });
  });
});
