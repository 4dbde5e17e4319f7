import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { RejectError, RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { pack, unpack, unpackr } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { forwardOutputSchema } from '../../../src/outputs/forward/config.ts';
import { chunkIdFor, packBatch } from '../../../src/outputs/forward/encode.ts';
import { ForwardOutput } from '../../../src/outputs/forward/index.ts';
import { startEstuary } from '../../support/estuary.ts';
import { scriptedInstances } from '../../support/outputs.ts';
import { selfSignedCert } from '../../support/tls.ts';
import { freePort, waitFor } from '../../support/wait.ts';

const batch = (tag: string, n: number) =>
  makeBatch(
    tag,
    Array.from({ length: n }, (_, i) => ({
      time: new EventTime(1_700_000_000 + i, 123_456_789),
      record: { i },
    })),
  );

describe('forward output encoding', () => {
  it('sends a batch as PackedForward with its payload bytes untouched', () => {
    const b = batch('app.web', 3);
    const m = packBatch(b, 'abc=', { compress: 'text', timeAsInteger: false });
    const [tag, entries, option] = unpack(m.bytes) as [string, Uint8Array, Record<string, unknown>];
    assert.equal(tag, 'app.web');
    assert.ok(Buffer.from(entries).equals(Buffer.from(b.payload)));
    assert.deepEqual(option, { size: 3, chunk: 'abc=' });
  });

  it('gzips for CompressedPackedForward and writes integer times on request', () => {
    const b = batch('t', 2);
    const gz = unpack(packBatch(b, undefined, { compress: 'gzip', timeAsInteger: false }).bytes) as [
      string,
      Uint8Array,
      Record<string, unknown>,
    ];
    assert.equal(gz[2].compressed, 'gzip');
    assert.equal(gz[2].chunk, undefined);
    assert.ok(gunzipSync(gz[1]).equals(Buffer.from(b.payload)));
    const ints = unpack(packBatch(b, undefined, { compress: 'text', timeAsInteger: true }).bytes) as [
      string,
      Uint8Array,
    ];
    assert.deepEqual(unpackr.unpackMultiple(ints[1]), [
      [1_700_000_000, { i: 0 }],
      [1_700_000_001, { i: 1 }],
    ]);
  });

  it('derives chunk ids that are the same on every retry of a chunk', () => {
    assert.equal(chunkIdFor('chunk-1', 0), chunkIdFor('chunk-1', 0));
    assert.notEqual(chunkIdFor('chunk-1', 0), chunkIdFor('chunk-1', 1));
    assert.equal(Buffer.from(chunkIdFor('x', 0), 'base64').length, 16);
  });
});

/** A receiver that records messages and acks them unless told to stay silent. */
async function receiver(ack = true) {
  const port = await freePort();
  const messages: unknown[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    let pending = Buffer.alloc(0);
    socket.on('data', (d) => {
      pending = Buffer.concat([pending, d]);
      let values: unknown[] = [];
      try {
        values = unpackr.unpackMultiple(pending) as unknown[];
        pending = Buffer.alloc(0);
      } catch (err) {
        const e = err as { values?: unknown[]; lastPosition?: number };
        values = e.values ?? [];
        pending = pending.subarray(e.lastPosition ?? 0);
      }
      for (const v of values as unknown[][]) {
        messages.push(v);
        const chunk = (v[2] as { chunk?: string }).chunk;
        if (ack && chunk) socket.write(pack({ ack: chunk }));
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return { port, messages, close };
}

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
    const r = await receiver();
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }] });
    const chunk = makeChunk('c1', [batch('a', 2), batch('b', 3)], 0);
    await out.write(chunk);
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
    const r = await receiver(false);
    cleanups.push(r.close);
    const out = output({ servers: [{ host: '127.0.0.1', port: r.port }], ack_response_timeout: '100ms' });
    await assert.rejects(
      out.write(makeChunk('c2', [batch('a', 1)], 0)),
      (err) => err instanceof RetryableError && /no ack/.test(err.message),
    );
    await out.stop();
  });

  it('fails over to the standby while the primary is down, and back once it recovers', async () => {
    const standby = await receiver();
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
    await assert.rejects(out.write(makeChunk('c3', [batch('a', 1)], 0)), RetryableError);
    await out.write(makeChunk('c3', [batch('a', 1)], 1));
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
    await good.write(chunk);
    const landed = scriptedInstances.get('landed')!;
    await waitFor(() => landed.delivered.length === 5, { what: 'records downstream' });
    assert.deepEqual(
      landed.delivered.map((e) => [e.tag, e.time.sec, e.time.nsec, e.record.i]),
      chunk.entries().map((e) => [e.tag, e.time.sec, e.time.nsec, e.record.i]),
    );

    // The same chunk again (a retry after a lost ack) is acked but not buffered twice.
    await good.write(makeChunk('chain-1', chunk.batches, 1));
    await good.write(makeChunk('chain-2', [batch('d', 1)], 0));
    await waitFor(() => landed.delivered.length === 6);
    assert.equal(landed.delivered.filter((e) => e.tag === 'a.b').length, 3);

    const wrongKey = secure('guess');
    await assert.rejects(
      wrongKey.write(makeChunk('x', [batch('a', 1)], 0)),
      (err) => err instanceof RejectError && /shared_key mismatch/.test(err.message),
    );
    await Promise.all([good.stop(), wrongKey.stop(), downstream.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
});
