import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { HaltError, RejectError, RetryableError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { classifyNetworkError, classifyStatus, type HttpSink } from '../../src/delivery/http-errors.ts';
import {
  type ItemAnswer,
  type RequestPlan,
  sendInRequests,
  splitRequests,
  TooLargeError,
} from '../../src/delivery/request.ts';
import { NO_DEADLINE } from '../support/outputs.ts';

/** An item as the request layer sees it: an entry, its size, and a group (a tenant). */
interface Item {
  n: number;
  bytes: number;
  group?: string;
  entry: TaggedEntry;
}

const item = (n: number, bytes = 10, group?: string): Item => ({
  n,
  bytes,
  group,
  entry: { tag: 't', time: new EventTime(1_700_000_000, n), record: { n } },
});
const items = (count: number, bytes = 10) => Array.from({ length: count }, (_, i) => item(i, bytes));
const ns = (xs: readonly { record: Record<string, unknown> }[] | undefined) =>
  (xs ?? []).map((e) => e.record.n);

type Answer = Error | readonly ItemAnswer[] | undefined | ((sent: readonly Item[]) => Error | undefined);

/** A plan whose sink answers from a script, request by request, recording what it was sent. */
function scripted(answers: Answer[], limits: Partial<RequestPlan<Item>> = {}) {
  const sent: number[][] = [];
  const plan: RequestPlan<Item> = {
    maxBytes: 1000,
    bytes: (i) => i.bytes,
    group: (i) => i.group,
    entry: (i) => i.entry,
    noun: 'entry',
    async send(request) {
      sent.push(request.map((i) => i.n));
      const answer = answers.shift();
      const outcome = typeof answer === 'function' ? answer(request) : answer;
      if (outcome instanceof Error) throw outcome;
      return outcome;
    },
    ...limits,
  };
  return { plan, sent };
}

describe('splitRequests', () => {
  const limits = { bytes: (i: Item) => i.bytes, group: (i: Item) => i.group };
  const ids = (rs: Item[][]) => rs.map((r) => r.map((i) => i.n));

  it('cuts by bytes and by count, in order; an item over the byte limit goes alone', () => {
    const xs = [item(0, 40), item(1, 40), item(2, 150), item(3, 10), item(4, 10), item(5, 10)];
    assert.deepEqual(ids(splitRequests(xs, { ...limits, maxBytes: 100, maxCount: 10 })), [
      [0, 1],
      [2],
      [3, 4, 5],
    ]);
    assert.deepEqual(ids(splitRequests(xs, { ...limits, maxBytes: 1000, maxCount: 2 })), [
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
    assert.deepEqual(splitRequests([], { ...limits, maxBytes: 100 }), []);
  });

  it('never mixes groups: each group’s requests in the order the group first appears', () => {
    const xs = [item(0, 10, 'a'), item(1, 10, 'b'), item(2, 10, 'a'), item(3, 10, 'a'), item(4, 10, 'b')];
    assert.deepEqual(ids(splitRequests(xs, { ...limits, maxBytes: 25 })), [[0, 2], [3], [1, 4]]);
  });

  it('charges an item by the one before it in its request (a stream header counted once)', () => {
    const header = 100;
    const xs = ['s', 's', 's', 't', 't'].map((stream, i) => ({ ...item(i, 10), group: stream }));
    const split = splitRequests(xs, {
      maxBytes: 130,
      bytes: (i, previous) => i.bytes + (previous?.group === i.group ? 0 : header),
    });
    // s: 110, 120, 130 | t: 110 (a new request: the header again), 120
    assert.deepEqual(ids(split), [
      [0, 1, 2],
      [3, 4],
    ]);
  });

  it('takes linear time: 100 000 items in well under a second', () => {
    const many = items(100_000, 1);
    const started = performance.now();
    const split = splitRequests(many, { ...limits, maxBytes: 1000 });
    assert.equal(split.length, 100);
    assert.ok(performance.now() - started < 1000);
  });
});

describe('sendInRequests: what a chunk’s requests come to', () => {
  it('all taken: undefined', async () => {
    const { plan, sent } = scripted([], { maxCount: 2 });
    assert.equal(await sendInRequests(items(5), plan, NO_DEADLINE.signal), undefined);
    assert.deepEqual(sent, [[0, 1], [2, 3], [4]]);
  });

  it('per-item answers: retry and reject only those; rejections made before sending are kept', async () => {
    const { plan } = scripted([
      [{ kind: 'ok' }, { kind: 'retry', reason: '429' }, { kind: 'reject', reason: 'mapping' }],
    ]);
    const early = [{ entry: item(9).entry, reason: 'cannot encode' }];
    const result = await sendInRequests(items(3), plan, NO_DEADLINE.signal, early);
    assert.deepEqual(ns(result!.retry), [1]);
    assert.deepEqual(
      result!.reject!.map((r) => [r.entry.record.n, r.reason]),
      [
        [9, 'cannot encode'],
        [2, 'mapping'],
      ],
    );
  });

  it('a RejectError rejects that request’s items with its message; the next request is still sent', async () => {
    const { plan, sent } = scripted([new RejectError('400: line too long'), undefined], { maxCount: 2 });
    const result = await sendInRequests(items(4), plan, NO_DEADLINE.signal);
    assert.deepEqual(sent, [
      [0, 1],
      [2, 3],
    ]);
    assert.deepEqual(
      result!.reject!.map((r) => [r.entry.record.n, r.reason]),
      [
        [0, '400: line too long'],
        [1, '400: line too long'],
      ],
    );
    assert.deepEqual(result!.retry, []);
  });

  it('retryable after some went through: only what was not delivered comes back, later requests unsent', async () => {
    const { plan, sent } = scripted([undefined, new RetryableError('503')], { maxCount: 2 });
    const result = await sendInRequests(items(6), plan, NO_DEADLINE.signal);
    assert.deepEqual(sent, [
      [0, 1],
      [2, 3],
    ]);
    assert.deepEqual(ns(result!.retry), [2, 3, 4, 5]);
  });

  it('retryable before anything went through: the error itself is thrown, with its Retry-After', async () => {
    const busy = new RetryableError('429', { retryAfterMs: 3000 });
    const { plan, sent } = scripted([busy], { maxCount: 2 });
    await assert.rejects(sendInRequests(items(6), plan, NO_DEADLINE.signal), (err) => err === busy);
    assert.equal(sent.length, 1);
  });

  it('a failing group stops only itself; when every group fails, the longest Retry-After wins', async () => {
    const grouped = [item(0, 10, 'a'), item(1, 10, 'b'), item(2, 10, 'a'), item(3, 10, 'c')];
    const { plan, sent } = scripted([new RetryableError('429 a', { retryAfterMs: 1000 }), undefined], {
      maxCount: 1,
    });
    const result = await sendInRequests(grouped, plan, NO_DEADLINE.signal);
    assert.deepEqual(sent, [[0], [1], [3]], 'a’s second request is not sent; b and c are');
    assert.deepEqual(ns(result!.retry), [0, 2]);

    const all = scripted(
      [
        new RetryableError('429 a', { retryAfterMs: 1000 }),
        new RetryableError('503 b', { retryAfterMs: 5000 }),
      ],
      { maxCount: 1 },
    );
    await assert.rejects(sendInRequests(grouped.slice(0, 2), all.plan, NO_DEADLINE.signal), (err) => {
      assert.ok(err instanceof RetryableError);
      assert.equal(err.message, '429 a');
      assert.equal(err.retryAfterMs, 5000);
      return true;
    });
  });

  it('a HaltError of any request halts the whole write, even after others went through', async () => {
    const { plan, sent } = scripted([undefined, new HaltError('401 unauthorized')], { maxCount: 2 });
    await assert.rejects(sendInRequests(items(6), plan, NO_DEADLINE.signal), HaltError);
    assert.equal(sent.length, 2, 'nothing sent after the halt');
  });

  it('anything else thrown counts as retryable', async () => {
    const { plan } = scripted([new TypeError('socket hang up')]);
    await assert.rejects(
      sendInRequests(items(2), plan, NO_DEADLINE.signal),
      (err) => err instanceof RetryableError && err.message === 'socket hang up',
    );
  });

  it('413 halves the request until it fits; a lone item still too large is rejected with the reason', async () => {
    const tooLarge = (max: number) => (request: readonly Item[]) =>
      request.length > max || request.some((i) => i.bytes > 100)
        ? new TooLargeError('http://sink: 413 request entity too large')
        : undefined;
    const xs = [...items(5), item(5, 500), item(6)];
    const split: number[] = [];
    const { plan, sent } = scripted(Array(20).fill(tooLarge(2)), { onSplit: (r) => split.push(r.length) });
    const result = await sendInRequests(xs, plan, NO_DEADLINE.signal);
    assert.deepEqual(sent, [
      [0, 1, 2, 3, 4, 5, 6],
      [0, 1, 2, 3],
      [0, 1],
      [2, 3],
      [4, 5, 6],
      [4, 5],
      [4],
      [5],
      [6],
    ]);
    assert.deepEqual(split, [7, 4, 3, 2]);
    assert.deepEqual(result!.retry, []);
    assert.deepEqual(
      result!.reject!.map((r) => [r.entry.record.n, r.reason]),
      [[5, 'http://sink: 413 request entity too large: one entry of 500 bytes is over the limit']],
    );
  });

  it('413, then a retryable failure of the first half: the second half is retried unsent', async () => {
    const { plan, sent } = scripted([new TooLargeError('413'), undefined, new RetryableError('503')], {
      maxCount: 4,
    });
    const result = await sendInRequests(items(6), plan, NO_DEADLINE.signal);
    // [0..3] → 413; [0,1] → ok; [2,3] → 503; [4,5] not sent
    assert.deepEqual(sent, [
      [0, 1, 2, 3],
      [0, 1],
      [2, 3],
    ]);
    assert.deepEqual(ns(result!.retry), [2, 3, 4, 5]);
  });

  it('a signal aborted mid-write: the requests not yet sent are retried', async () => {
    const abort = new AbortController();
    const { plan, sent } = scripted(
      [
        () => {
          abort.abort(new Error('write_timeout'));
          return undefined;
        },
      ],
      { maxCount: 2 },
    );
    const result = await sendInRequests(items(6), plan, abort.signal);
    assert.deepEqual(sent, [[0, 1]]);
    assert.deepEqual(ns(result!.retry), [2, 3, 4, 5]);
    const none = scripted([]);
    await assert.rejects(sendInRequests(items(2), none.plan, abort.signal), /write aborted .*write_timeout/);
    assert.equal(none.sent.length, 0);
  });

  it('concurrency: that many groups at once, each group’s requests one after the other', async () => {
    const sent: string[] = [];
    let inFlight = 0;
    let most = 0;
    const three = Promise.withResolvers<void>();
    // If groups went one at a time, three would never be in flight: the deadline lets it finish.
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    const plan: RequestPlan<Item> = {
      maxBytes: 1000,
      maxCount: 1,
      bytes: (i) => i.bytes,
      group: (i) => i.group,
      entry: (i) => i.entry,
      noun: 'entry',
      concurrency: 3,
      async send([i]) {
        sent.push(`${i!.group}${i!.n}`);
        inFlight += 1;
        most = Math.max(most, inFlight);
        if (inFlight === 3) three.resolve();
        await Promise.race([three.promise, deadline]);
        inFlight -= 1;
        return undefined;
      },
    };
    const all = [...'abcd'].flatMap((g, k) => [item(2 * k, 10, g), item(2 * k + 1, 10, g)]);
    assert.equal(await sendInRequests(all, plan, NO_DEADLINE.signal), undefined);
    assert.equal(most, 3);
    assert.deepEqual(sent.slice(0, 3), ['a0', 'b2', 'c4']);
    for (const [k, g] of [...'abcd'].entries())
      assert.ok(sent.indexOf(`${g}${2 * k}`) < sent.indexOf(`${g}${2 * k + 1}`), `${g} in order`);
    assert.equal(sent.length, 8);
  });

  it('concurrency: a HaltError of one group stops the groups not started yet', async () => {
    const { plan, sent } = scripted(
      [
        (r) => (r[0]!.group === 'b' ? new HaltError('401') : undefined),
        (r) => (r[0]!.group === 'b' ? new HaltError('401') : undefined),
      ],
      { maxCount: 1, concurrency: 2 },
    );
    const all = [...'abc'].flatMap((g, k) => [item(2 * k, 10, g), item(2 * k + 1, 10, g)]);
    await assert.rejects(sendInRequests(all, plan, NO_DEADLINE.signal), HaltError);
    assert.deepEqual(sent.slice(0, 2), [[0], [2]]);
    assert.ok(
      !sent.flat().includes(4) && !sent.flat().includes(5),
      `group c never sent: ${JSON.stringify(sent)}`,
    );
  });

  it('an answer of the wrong length is retried as a whole', async () => {
    const { plan } = scripted([[{ kind: 'ok' }]]);
    await assert.rejects(sendInRequests(items(2), plan, NO_DEADLINE.signal), /answered 1 items for 2 sent/);
  });
});

describe('classifyStatus: what an HTTP answer means', () => {
  const sink: HttpSink = { at: 'http://sink:80/push', name: 'the sink', hints: { 401: 'check the token' } };
  const kind = (status: number, s: HttpSink = sink) => {
    const error = classifyStatus({ status, detail: ': words' }, s);
    return error === undefined ? 'ok' : error.name;
  };

  it('2xx ok; 401, 403, 404 halt; 413 split; 408, 429, 5xx retry; other 4xx reject; 3xx halt', () => {
    const table = Object.fromEntries(
      [200, 204, 301, 400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 503].map((s) => [s, kind(s)]),
    );
    assert.deepEqual(table, {
      200: 'ok',
      204: 'ok',
      301: 'HaltError',
      400: 'RejectError',
      401: 'HaltError',
      403: 'HaltError',
      404: 'HaltError',
      408: 'RetryableError',
      409: 'RejectError',
      413: 'TooLargeError',
      422: 'RejectError',
      429: 'RetryableError',
      500: 'RetryableError',
      503: 'RetryableError',
    });
    assert.equal(kind(404, { ...sink, notFoundRejects: true }), 'RejectError');
  });

  it('says where, the status, the sink’s words and what to check; passes Retry-After on', () => {
    assert.equal(
      classifyStatus({ status: 401, detail: ': expired' }, sink)!.message,
      'http://sink:80/push: 401 unauthorized: expired: check the token',
    );
    assert.equal(
      classifyStatus({ status: 422, detail: ' (bad field)' }, sink)!.message,
      'http://sink:80/push: the sink refused the request: 422 (bad field)',
    );
    const busy = classifyStatus({ status: 429, detail: '', retryAfter: '7' }, sink);
    assert.ok(busy instanceof RetryableError);
    assert.equal(busy.retryAfterMs, 7000);
    assert.equal(busy.message, 'http://sink:80/push: 429');
  });
});

describe('classifyNetworkError: a request that got no answer', () => {
  // The rules per code are outputs/net-errors' (tested there); this layer digs the code out.
  const kind = (e: unknown) => classifyNetworkError(e, 'http://sink').name;

  it('finds the code on the error, in a cause, or in the message of a client that kept only that', () => {
    assert.equal(
      kind(Object.assign(new Error('getaddrinfo ENOTFOUND es'), { code: 'ENOTFOUND' })),
      'HaltError',
    );
    assert.equal(
      kind(new Error('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ENOTFOUND' }) })),
      'HaltError',
    );
    // What the Elasticsearch client's ConnectionError says.
    assert.equal(kind(new Error('getaddrinfo ENOTFOUND es.example')), 'HaltError');
    assert.equal(kind(new Error('self-signed certificate')), 'HaltError');
    assert.equal(kind(new Error('self-signed certificate in certificate chain')), 'HaltError');
    assert.equal(kind(new Error('unable to verify the first certificate')), 'HaltError');
    assert.equal(kind(new Error('certificate has expired')), 'HaltError');
    assert.equal(
      kind(new Error("Hostname/IP does not match certificate's altnames: IP: 10.0.0.1")),
      'HaltError',
    );
    assert.equal(kind(new Error('getaddrinfo EAI_AGAIN es.example')), 'RetryableError');
    assert.equal(kind(new Error('connect ECONNREFUSED 127.0.0.1:9200')), 'RetryableError');
    assert.equal(kind(new Error('other side closed')), 'RetryableError');
    assert.equal(kind('a string'), 'RetryableError');
  });

  it('says where, keeps the original as the cause, and passes an error already classified unchanged', () => {
    const original = new Error('getaddrinfo ENOTFOUND es.example');
    const halt = classifyNetworkError(original, 'http://es.example:9200: _bulk');
    assert.match(
      halt.message,
      /^http:\/\/es\.example:9200: _bulk: getaddrinfo ENOTFOUND es\.example \(unknown host/,
    );
    assert.equal((halt.cause as Error).cause, original);
    for (const e of [new RetryableError('r'), new RejectError('j'), new HaltError('h')])
      assert.equal(classifyNetworkError(e, 'x'), e);
  });
});
