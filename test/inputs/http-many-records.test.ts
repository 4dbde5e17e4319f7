import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pack } from '../../src/core/msgpack.ts';
import { startEstuary } from '../support/estuary.ts';
import { postJson } from '../support/http.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { sample } from '../support/prom-text.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * A small body of very many tiny records: decoded, `{"a":1}` takes some 15 times its 8
 * bytes, so 183 KB of gzip once grew the process to 5 GB. What decoding a body will hold is
 * now counted from its bytes and refused with a 413 (max_records, or more than the in-flight
 * budget could ever give it) before a single record object exists.
 */

const tiny = (n: number) => Buffer.from(`[${Array.from({ length: n }, () => '{"a":1}').join(',')}]`);

describe('http input: requests that would decode into too much', () => {
  let e: Awaited<ReturnType<typeof startEstuary>>;
  let port: number;

  before(async () => {
    port = await freePort();
    e = await startEstuary(`
service:
  max_inflight_bytes: 16MiB
inputs:
  - { type: http, id: in, port: ${port}, listen: 127.0.0.1, max_records: 200000 }
outputs:
  - { type: scripted, id: out, match: "**", buffer: { flush_interval: 100ms } }
`);
  });

  after(() => e?.stop());

  async function post(body: Buffer, headers: Record<string, string>) {
    const res = await fetch(`http://127.0.0.1:${port}/many`, { method: 'POST', headers, body });
    return { status: res.status, text: await res.text() };
  }

  it('refuses more records than max_records with a 413 and the reason, gzip bomb included', async () => {
    // 300,000 records: 2.4 MB of JSON, 9 KB of gzip.
    const body = gzipSync(tiny(300_000));
    assert.ok(body.length < 20_000);
    const res = await post(body, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    assert.equal(res.status, 413);
    assert.match(res.text, /300000 records in one request; max_records is 200000/);
  });

  it('counts msgpack records the same way', async () => {
    const body = pack(Array.from({ length: 250_000 }, () => ({ a: 1 })));
    const res = await post(body, { 'content-type': 'application/msgpack' });
    assert.equal(res.status, 413);
    assert.match(res.text, /250000 records in one request/);
  });

  it('refuses a body whose decoded records could never fit in the in-flight budget', async () => {
    // 150,000 records under max_records, but ~23 MiB decoded against a 16 MiB budget.
    const res = await post(tiny(150_000), { 'content-type': 'application/json' });
    assert.equal(res.status, 413);
    assert.match(
      res.text,
      /decoding this body would hold about [\d.]+ MiB with the body itself, more than service\.max_inflight_bytes \(16\.0 MiB\)/,
    );
  });

  it('stores nothing of a refused body, takes the next good one, and gives the budget back', async () => {
    const out = scriptedInstances.get('out')!;
    const ok = await postJson(port, 'good', [{ n: 1 }, { n: 2 }]);
    assert.equal(ok.status, 200);
    await waitFor(() => out.delivered.length >= 2, { timeoutMs: 5000 });
    assert.deepEqual(
      out.delivered.map((d) => [d.tag, d.record]),
      [
        ['good', { n: 1 }],
        ['good', { n: 2 }],
      ],
    );
    // Every lease of the refused requests was returned: nothing is held in flight.
    await waitFor(async () => sample(await e.metrics(), 'estuary_inflight_bytes').value === 0, {
      timeoutMs: 5000,
    });
  });

  it('takes a large request of real records that fits', async () => {
    const out = scriptedInstances.get('out')!;
    const before = out.delivered.length;
    const records = Array.from({ length: 20_000 }, (_, i) => ({
      i,
      msg: 'request completed',
      path: `/api/${i}`,
    }));
    const res = await postJson(port, 'big', records);
    assert.equal(res.status, 200);
    await waitFor(() => out.delivered.length >= before + 20_000, { timeoutMs: 10_000 });
  });
});
