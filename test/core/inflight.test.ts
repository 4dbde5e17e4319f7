import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackpressureError } from '../../src/core/errors.ts';
import { InflightBudget } from '../../src/core/inflight.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { sample } from '../support/prom-text.ts';

/** Lets every settled promise run its callbacks. */
const settle = () => new Promise<void>((r) => setImmediate(r));

describe('InflightBudget', () => {
  it('takes what fits, refuses what does not, and never counts below zero', () => {
    const budget = new InflightBudget(100);
    assert.equal(budget.tryTake(60), true);
    assert.equal(budget.tryTake(40), true);
    assert.equal(budget.tryTake(1), false);
    assert.equal(budget.bytes, 100);
    budget.release(30);
    assert.equal(budget.tryTake(30), true);
    budget.release(1000);
    assert.equal(budget.bytes, 0);
    budget.release(5);
    assert.equal(budget.bytes, 0);
    assert.equal(budget.peak, 100);
    // A lease gives back only what it holds, whatever it is asked to.
    const lease = budget.lease();
    assert.equal(budget.tryTake(10), true);
    assert.equal(lease.tryTake(20), true);
    lease.release(50);
    assert.equal(lease.held, 0);
    assert.equal(budget.bytes, 10);
    lease.releaseAll();
    assert.equal(budget.bytes, 10);
  });

  it('serves waiters in arrival order: a later small take does not overtake an earlier large one', async () => {
    const budget = new InflightBudget(100);
    assert.equal(budget.tryTake(90), true);
    const order: string[] = [];
    const large = budget.take(50).then(() => order.push('large'));
    const small = budget.take(5).then(() => order.push('small'));
    await settle();
    assert.equal(order.length, 0, 'the small one fits but waits behind the large one');
    assert.equal(budget.tryTake(5), false, 'tryTake does not overtake waiters either');
    assert.equal(budget.waiting, 2);
    budget.release(30);
    await settle();
    assert.equal(order.length, 0);
    budget.release(50);
    await Promise.all([large, small]);
    assert.deepEqual(order, ['large', 'small']);
    assert.equal(budget.bytes, 65);
  });

  it('admits one take larger than the whole limit only when nothing else is held', async () => {
    const budget = new InflightBudget(100);
    const big = budget.lease();
    assert.equal(budget.tryTake(1), true);
    assert.equal(big.tryTake(500), false, 'something else is held');
    let admitted = false;
    const waiting = big.take(500).then(() => {
      admitted = true;
    });
    await settle();
    assert.equal(admitted, false);
    budget.release(1);
    await waiting;
    assert.equal(budget.bytes, 500);
    // The same lease, alone, finishes what it is in the middle of; no one else gets in.
    assert.equal(big.tryTake(200), true);
    assert.equal(budget.tryTake(1), false);
    big.releaseAll();
    assert.equal(budget.bytes, 0);
    assert.equal(budget.tryTake(100), true);
  });

  it('breaks the deadlock of holders that each wait for more, and lets the one served finish first', async () => {
    const budget = new InflightBudget(100);
    const a = budget.lease();
    const b = budget.lease();
    const idle = budget.lease();
    assert.equal(a.tryTake(30), true);
    assert.equal(b.tryTake(70), true);
    // Each is in the middle of a message and needs more to finish it: nothing will be released.
    const order: string[] = [];
    const aMore = a.take(40).then(() => order.push('a'));
    const idleFirst = idle.take(10).then(() => order.push('idle'));
    await settle();
    assert.equal(order.length, 0, 'b still holds bytes and does not wait: the others wait');
    const bMore = b.take(40).then(() => order.push('b'));
    await bMore;
    assert.deepEqual(order, ['b'], 'every holder waits: the one holding most is served');
    assert.equal(budget.bytes, 140);
    // b goes on past the limit, ahead of the others, until it gives something back.
    assert.equal(b.tryTake(20), true);
    await settle();
    assert.deepEqual(order, ['b']);
    b.releaseAll();
    await Promise.all([aMore, idleFirst]);
    assert.deepEqual(order, ['b', 'a', 'idle'], 'then arrival order again');
    assert.equal(budget.bytes, 80);
    assert.equal(budget.peak, 160, 'past the limit by one holder’s message, not one per holder');
  });

  it('gives up a wait when aborted or timed out, and the next waiter goes in its place', async () => {
    const budget = new InflightBudget(100);
    assert.equal(budget.tryTake(100), true);
    const abort = new AbortController();
    const aborted = budget.take(60, { signal: abort.signal });
    const next = budget.take(40);
    abort.abort(new Error('client gone'));
    await assert.rejects(aborted, /client gone/);
    assert.equal(budget.waiting, 1);
    budget.release(40);
    await next;
    assert.equal(budget.bytes, 100);
    await assert.rejects(budget.take(1, { signal: abort.signal }), /client gone/, 'already aborted');
    const started = Date.now();
    await assert.rejects(budget.take(1, { timeoutMs: 30 }), (err) => {
      assert.ok(err instanceof BackpressureError);
      assert.match(err.message, /max_inflight_bytes \(100 bytes\) within 30ms/);
      return true;
    });
    assert.ok(Date.now() - started >= 25);
    assert.equal(budget.waiting, 0);
    assert.equal(budget.bytes, 100, 'a wait given up takes nothing');
  });

  it('is exported as estuary_inflight_bytes and estuary_inflight_limit_bytes', async () => {
    const metrics = new Metrics();
    const budget = new InflightBudget(4096);
    metrics.registerInflight(budget);
    assert.equal(budget.tryTake(1000), true);
    const text = await metrics.render();
    assert.equal(sample(text, 'estuary_inflight_bytes').value, 1000);
    assert.equal(sample(text, 'estuary_inflight_limit_bytes').value, 4096);
  });
});
