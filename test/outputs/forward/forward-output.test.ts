import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { makeChunk, tagRuns } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { HaltError, RejectError, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { unpack, unpackr } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { forwardOutputSchema } from '../../../src/outputs/forward/config.ts';
import { chunkIdFor, packRun } from '../../../src/outputs/forward/encode.ts';
import { ForwardOutput } from '../../../src/outputs/forward/index.ts';
import { startEstuary } from '../../support/estuary.ts';
import { forwardReceiver } from '../../support/forward-receiver.ts';
import { NO_DEADLINE, scriptedInstances } from '../../support/outputs.ts';
import { SilentServer } from '../../support/silent-server.ts';
import { selfSignedCert } from '../../support/tls.ts';
import { freePort, settlesWithin, waitFor } from '../../support/wait.ts';

const batch = (tag: string, n: number) =>
  makeBatch(
    tag,
    Array.from({ length: n }, (_, i) => ({
      time: new EventTime(1_700_000_000 + i, 123_456_789),
      record: { i },
    })),
  );

describe('forward output encoding', () => {
  it('sends a run of one tag as one PackedForward message with its payload bytes untouched', async () => {
    const b = batch('app.web', 3);
    const c = batch('app.web', 2);
    const [run, ...rest] = tagRuns([b, c]);
    assert.equal(rest.length, 0);
    const m = await packRun(run!, 'abc=', { compress: 'text', timeAsInteger: false });
    const [tag, entries, option] = unpack(m.bytes) as [string, Uint8Array, Record<string, unknown>];
    assert.equal(tag, 'app.web');
    assert.ok(Buffer.from(entries).equals(Buffer.concat([b.payload, c.payload])));
    assert.deepEqual(option, { size: 5, chunk: 'abc=' });
    assert.deepEqual(
      tagRuns([b, batch('x', 1), c]).map((r) => [r.tag, r.count]),
      [
        ['app.web', 3],
        ['x', 1],
        ['app.web', 2],
      ],
    );
  });

  it('gzips for CompressedPackedForward and writes integer times on request', async () => {
    const b = batch('t', 2);
    const [run] = tagRuns([b]);
    const gz = unpack((await packRun(run!, undefined, { compress: 'gzip', timeAsInteger: false })).bytes) as [
      string,
      Uint8Array,
      Record<string, unknown>,
    ];
    assert.equal(gz[2].compressed, 'gzip');
    assert.equal(gz[2].chunk, undefined);
    assert.ok(gunzipSync(gz[1]).equals(Buffer.from(b.payload)));
    const ints = unpack(
      (await packRun(run!, undefined, { compress: 'text', timeAsInteger: true })).bytes,
    ) as [string, Uint8Array];
    assert.deepEqual(unpackr.unpackMultiple(ints[1]), [
      [1_700_000_000, { i: 0 }],
      [1_700_000_001, { i: 1 }],
    ]);
  });

  it('with integer times, a record that cannot be encoded is left out and rejected; an undecodable batch is a RejectError', async () => {
    const deep: Record<string, unknown> = { a: [] };
    let cur = deep.a as unknown[];
    for (let i = 0; i < 30_000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    const time = new EventTime(1_700_000_000, 5);
    const b = makeBatch('t', [
      { time, record: { ok: 0 } },
      { time, record: deep },
      { time, record: { ok: 2 } },
    ]);
    // The buffered bytes are fine as they are: passed through, nothing rejected.
    const [run] = tagRuns([b]);
    const through = await packRun(run!, undefined, { compress: 'text', timeAsInteger: false });
    assert.equal(through.rejected?.length ?? 0, 0);
    const m = await packRun(run!, undefined, { compress: 'text', timeAsInteger: true });
    assert.equal(m.count, 3 - (m.rejected?.length ?? 0));
    const bad = { tag: 't', payload: Buffer.from([0x92, 0x01]), count: 1, bytes: 2 };
    await assert.rejects(
      packRun(tagRuns([bad])[0]!, undefined, { compress: 'text', timeAsInteger: true }),
      RejectError,
    );
  });

  it('derives chunk ids that are the same on every retry of a chunk', () => {
    assert.equal(chunkIdFor('chunk-1', 0), chunkIdFor('chunk-1', 0));
    assert.notEqual(chunkIdFor('chunk-1', 0), chunkIdFor('chunk-1', 1));
    assert.equal(Buffer.from(chunkIdFor('x', 0), 'base64').length, 16);
  });
});

function output(options: Record<string, unknown>) {
  const config = forwardOutputSchema.parse(options);
  return new ForwardOutput(config, {
    id: 'fwd',
    logger: silentLogger(),
    metrics: new Metrics(),
    configDir: '.',
  });
}

describe('forward output delivery', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('sends one message per tag run and resolves only when each is acked', async () => {
    const r = await forwardReceiver();
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }] });
    const chunk = makeChunk('c1', [batch('a', 2), batch('b', 3)], 0);
    await out.write(chunk, NO_DEADLINE);
    assert.deepEqual(
      r.messages.map((m) => [m[0], (m[2] as { size: number }).size, (m[2] as { chunk: string }).chunk]),
      [
        ['a', 2, chunkIdFor('c1', 0)],
        ['b', 3, chunkIdFor('c1', 1)],
      ],
    );
    await out.stop();
  });

  it('fails with a RetryableError when no ack comes in time', async () => {
    const r = await forwardReceiver({ answer: 'silent' });
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }], ack_response_timeout: '100ms' });
    await assert.rejects(
      out.write(makeChunk('c2', [batch('a', 1)], 0), NO_DEADLINE),
      (err) => err instanceof RetryableError && /no ack/.test(err.message),
    );
    await out.stop();
  });

  it('fails over to the standby while the primary is down, and back once it recovers', async () => {
    const standby = await forwardReceiver();
    cleanups.push(standby.close);
    const deadPort = await freePort();
    const out = output({
      servers: [
        { host: '127.0.0.1', port: deadPort, name: 'primary' },
        { host: '127.0.0.1', port: standby.port, standby: true },
      ],
      recover_wait: '50ms',
      connect_timeout: '500ms',
    });
    await assert.rejects(out.write(makeChunk('c3', [batch('a', 1)], 0), NO_DEADLINE), RetryableError);
    await out.write(makeChunk('c3', [batch('a', 1)], 1), NO_DEADLINE);
    assert.equal(standby.messages.length, 1, 'the retry went to the standby');
    await out.stop();
  });
});

describe('forward output → forward input (aggregator chaining)', () => {
  it('delivers through shared_key + user auth + TLS with acks, nanoseconds intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-fwd-out-'));
    const { cert, key } = selfSignedCert(dir);
    const port = await freePort();
    const downstream = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - type: forward
    listen: 127.0.0.1
    port: ${port}
    tls: { cert_file: ${cert}, key_file: ${key} }
    security:
      self_hostname: downstream
      shared_key: s3cret
      user_auth: true
      users: [{ username: edge, password: pw }]
outputs:
  - { type: scripted, id: landed }
`);
    const secure = (shared_key: string) =>
      output({
        servers: [{ host: '127.0.0.1', port }],
        tls: { ca_file: cert },
        security: { self_hostname: 'upstream', shared_key, username: 'edge', password: 'pw' },
        connect_timeout: '2s',
      });
    const good = secure('s3cret');
    const chunk = makeChunk('chain-1', [batch('a.b', 3), batch('c', 2)], 0);
    await good.write(chunk, NO_DEADLINE);
    const landed = scriptedInstances.get('landed')!;
    await waitFor(() => landed.delivered.length === 5, { what: 'records downstream' });
    assert.deepEqual(
      landed.delivered.map((e) => [e.tag, e.time.sec, e.time.nsec, e.record.i]),
      chunk.entries().map((e) => [e.tag, e.time.sec, e.time.nsec, e.record.i]),
    );

    // The same chunk again (a retry after a lost ack) is acked but not buffered twice.
    await good.write(makeChunk('chain-1', chunk.batches, 1), NO_DEADLINE);
    await good.write(makeChunk('chain-2', [batch('d', 1)], 0), NO_DEADLINE);
    await waitFor(() => landed.delivered.length === 6);
    assert.equal(landed.delivered.filter((e) => e.tag === 'a.b').length, 3);

    const wrongKey = secure('guess');
    await assert.rejects(
      wrongKey.write(makeChunk('x', [batch('a', 1)], 0), NO_DEADLINE),
      (err) => err instanceof HaltError && /shared_key mismatch/.test(err.message),
    );
    await Promise.all([good.stop(), wrongKey.stop(), downstream.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('forward output: what each failure becomes', () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanups) await c();
  });

  it('a receiver that never acks is abandoned when the signal aborts: RetryableError, connection closed', async () => {
    const r = await forwardReceiver({ answer: 'silent' });
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }] }); // ack timeout: 190s
    const deadline = new AbortController();
    const write = out.write(makeChunk('c-abort', [batch('a', 1)], 0), { signal: deadline.signal });
    await waitFor(() => r.messages.length === 1, { what: 'the message sent' });
    const abortedAt = Date.now();
    deadline.abort(new Error('write_timeout'));
    const { error } = await settlesWithin(write, 1000);
    assert.ok(error instanceof RetryableError, String(error));
    assert.match(error.message, /abandoned: write_timeout/);
    assert.ok(Date.now() - abortedAt < 1000);
    await waitFor(() => r.stats.closed === 1, { what: 'the connection closed' });
    await out.stop();
  });

  it('a receiver that never sends HELO is abandoned on abort, mid-handshake', async () => {
    const silent = await SilentServer.start();
    cleanups.push(() => silent.stop());
    const out = output({
      servers: [{ host: '127.0.0.1', port: silent.port }],
      security: { self_hostname: 'up', shared_key: 'k' },
      connect_timeout: '60s',
    });
    const deadline = new AbortController();
    const write = out.write(makeChunk('c-hs', [batch('a', 1)], 0), { signal: deadline.signal });
    await waitFor(() => silent.accepted === 1, { what: 'a connection' });
    deadline.abort();
    const { error } = await settlesWithin(write, 1000);
    assert.ok(error instanceof RetryableError, String(error));
    await waitFor(() => silent.open === 0, { what: 'the connection closed' });
    await out.stop();
  });

  it('an already aborted signal fails at once, without connecting', async () => {
    const r = await forwardReceiver();
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }] });
    const { error } = await settlesWithin(
      out.write(makeChunk('c-pre', [batch('a', 1)], 0), { signal: AbortSignal.abort() }),
      200,
    );
    assert.ok(error instanceof RetryableError);
    assert.equal(r.stats.connections, 0);
    await out.stop();
  });

  it('a wrong shared_key is a HaltError; with another receiver left to try, a RetryableError first', async () => {
    const a = await forwardReceiver({ sharedKey: 'right' });
    const b = await forwardReceiver({ sharedKey: 'right' });
    cleanups.push(a.close, b.close);
    const out = output({
      servers: [
        { host: '127.0.0.1', port: a.port, name: 'a' },
        { host: '127.0.0.1', port: b.port, name: 'b' },
      ],
      security: { self_hostname: 'up', shared_key: 'wrong' },
    });
    const first = await settlesWithin(out.write(makeChunk('k1', [batch('a', 1)], 0), NO_DEADLINE), 2000);
    assert.ok(first.error instanceof RetryableError, String(first.error));
    assert.match(first.error.message, /shared_key mismatch; the next try goes to another server/);
    const second = await settlesWithin(out.write(makeChunk('k1', [batch('a', 1)], 1), NO_DEADLINE), 2000);
    assert.ok(second.error instanceof HaltError, String(second.error));
    assert.match(
      second.error.message,
      /forward handshake refused: authentication failed: shared_key mismatch/,
    );
    assert.equal(a.stats.refusedHandshakes + b.stats.refusedHandshakes, 2);
    await out.stop();
  });

  /** A receiver behind TLS with a fresh self-signed certificate, kept in `dir`. */
  async function tlsReceiver() {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-fwd-tls-'));
    const { cert, key } = selfSignedCert(dir);
    const r = await forwardReceiver({ tls: { cert: readFileSync(cert), key: readFileSync(key) } });
    cleanups.push(r.close);
    return { r, cert, dir };
  }

  it('a certificate that does not verify is a HaltError', async () => {
    const { r, dir } = await tlsReceiver();
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }], tls: {} }); // system CAs only
    const { error } = await settlesWithin(out.write(makeChunk('t1', [batch('a', 1)], 0), NO_DEADLINE), 2000);
    assert.ok(error instanceof HaltError, String(error));
    assert.match(error.message, /self-signed certificate.*check ca_file/);
    await out.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a reset connection and a refused one are RetryableErrors', async () => {
    const r = await forwardReceiver({ answer: 'reset' });
    cleanups.push(r.close);
    const reset = output({ servers: [{ host: '127.0.0.1', port: r.port }] });
    const { error } = await settlesWithin(
      reset.write(makeChunk('r1', [batch('a', 1)], 0), NO_DEADLINE),
      2000,
    );
    assert.ok(error instanceof RetryableError, String(error));
    const refused = output({ servers: [{ host: '127.0.0.1', port: await freePort() }] });
    const second = await settlesWithin(refused.write(makeChunk('r2', [batch('a', 1)], 0), NO_DEADLINE), 2000);
    assert.ok(second.error instanceof RetryableError, String(second.error));
    assert.match(second.error.message, /ECONNREFUSED/);
    await Promise.all([reset.stop(), refused.stop()]);
  });

  it('a TLS file that cannot be read is a startup error naming its key, read once', async () => {
    const out = output({ servers: [{ host: '127.0.0.1', port: 1 }], tls: { ca_file: 'missing-ca.pem' } });
    await assert.rejects(out.start!(), /tls\.ca_file: cannot read .*missing-ca\.pem: ENOENT/);
    // Not started (as in a test): the write reports it as a halt, never a retry for 72 hours.
    await assert.rejects(out.write(makeChunk('m1', [batch('a', 1)], 0), NO_DEADLINE), HaltError);
    await out.stop();
  });

  it('reads the TLS files at start and not again per write', async () => {
    const { r, cert, dir } = await tlsReceiver();
    const out = output({
      servers: [{ host: '127.0.0.1', port: r.port }],
      tls: { ca_file: cert },
      keepalive: false,
    });
    await out.start!();
    rmSync(dir, { recursive: true, force: true });
    await out.write(makeChunk('f1', [batch('a', 1)], 0), NO_DEADLINE);
    await out.write(makeChunk('f2', [batch('a', 1)], 0), NO_DEADLINE);
    assert.equal(r.stats.connections, 2, 'two connections, both verified with the CA read at start');
    await out.stop();
  });

  it('a write after stop fails as retryable and opens nothing; start() makes it usable again', async () => {
    const r = await forwardReceiver();
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }] });
    await out.stop();
    await out.stop();
    await assert.rejects(out.write(makeChunk('s1', [batch('a', 1)], 0), NO_DEADLINE), /output stopped/);
    assert.equal(r.stats.connections, 0);
    await out.start!();
    await out.write(makeChunk('s1', [batch('a', 1)], 1), NO_DEADLINE);
    assert.equal(r.messages.length, 1);
    await out.stop();
  });
});
