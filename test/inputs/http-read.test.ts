import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { BackpressureError } from '../../src/core/errors.ts';
import { InflightBudget } from '../../src/core/inflight.ts';
import { BodyError } from '../../src/inputs/http-body.ts';
import { readBody } from '../../src/inputs/http-read.ts';

function refusedWith(status: number, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BodyError, String(err));
    assert.equal(err.status, status);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('readBody', () => {
  it('reads a body whose room was taken ahead (Content-Length) without taking more', async () => {
    const budget = new InflightBudget(10);
    const lease = budget.lease();
    assert.equal(lease.tryTake(8), true);
    const stream = new PassThrough();
    const body = readBody(stream, { maxBytes: 100, declared: 8, lease });
    stream.end('{"a":12}');
    assert.equal((await body).toString(), '{"a":12}');
    assert.equal(budget.bytes, 8);
  });

  it('refuses a Content-Length over max_body_size before reading, and a body that grows past it', async () => {
    const lease = new InflightBudget(1000).lease();
    const unread = new PassThrough();
    await assert.rejects(
      readBody(unread, { maxBytes: 10, declared: 11, lease }),
      refusedWith(413, /max_body_size \(10 bytes\)/),
    );
    assert.equal(unread.readableFlowing, null, 'not a byte read');
    const stream = new PassThrough();
    const body = readBody(stream, { maxBytes: 10, declared: undefined, lease });
    stream.write('123456');
    stream.write('78901');
    await assert.rejects(body, refusedWith(413, /max_body_size/));
  });

  it('takes a chunked body as it arrives and stops reading at the first piece that does not fit', async () => {
    const budget = new InflightBudget(10);
    const other = budget.lease();
    assert.equal(other.tryTake(4), true);
    const lease = budget.lease();
    const stream = new PassThrough();
    const body = readBody(stream, { maxBytes: 100, declared: undefined, lease });
    stream.write('12345');
    stream.write('6789');
    await assert.rejects(
      body,
      (err) => err instanceof BackpressureError && /max_inflight_bytes 10/.test(err.message),
    );
    assert.equal(lease.held, 5, 'the piece that did not fit is not taken');
    assert.equal(stream.isPaused(), true, 'nothing more is read');
  });

  it('gives up a body that stalls (408) and one whose client goes away', async () => {
    const lease = new InflightBudget(100).lease();
    const stalled = new PassThrough();
    const body = readBody(stalled, { maxBytes: 100, declared: undefined, lease, stallMs: 50 });
    stalled.write('{"a":');
    await assert.rejects(body, refusedWith(408, /stalled: nothing received for 0.05s/));
    const gone = new PassThrough();
    const cut = readBody(gone, { maxBytes: 100, declared: undefined, lease });
    gone.write('{"a":');
    gone.destroy();
    await assert.rejects(cut, refusedWith(400, /not complete/));
  });
});
