import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch } from '../../../src/core/batch.ts';
import { RetryableError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { pack, unpack, unpackr } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { forwardOutputSchema } from '../../../src/outputs/forward/config.ts';
import { chunkIdFor, encodeMessage, encodePackedForward } from '../../../src/outputs/forward/encode.ts';
import { ForwardOutput } from '../../../src/outputs/forward/index.ts';
import { freePort } from '../../support/wait.ts';

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
    const m = encodePackedForward(b, 'abc=', { compress: 'text', timeAsInteger: false });
    const [tag, entries, option] = unpack(m.bytes) as [string, Uint8Array, Record<string, unknown>];
    assert.equal(tag, 'app.web');
    assert.ok(Buffer.from(entries).equals(Buffer.from(b.payload)));
    assert.deepEqual(option, { size: 3, chunk: 'abc=' });
  });

  it('gzips for CompressedPackedForward and writes integer times on request', () => {
    const b = batch('t', 2);
    const gz = unpack(
      encodePackedForward(b, undefined, { compress: 'gzip', timeAsInteger: false }).bytes,
    ) as [string, Uint8Array, Record<string, unknown>];
    assert.equal(gz[2].compressed, 'gzip');
    assert.equal(gz[2].chunk, undefined);
    assert.ok(gunzipSync(gz[1]).equals(Buffer.from(b.payload)));
    const ints = unpack(
      encodePackedForward(b, undefined, { compress: 'text', timeAsInteger: true }).bytes,
    ) as [string, Uint8Array];
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

  it('writes Message mode as [tag, EventTime, record, {chunk}]', () => {
    const [tag, time, record, option] = unpack(
      encodeMessage('d', { time: new EventTime(5, 6), record: { a: 1 } }, 'c'),
    ) as [string, EventTime, unknown, unknown];
    assert.deepEqual([tag, time.sec, time.nsec, record, option], ['d', 5, 6, { a: 1 }, { chunk: 'c' }]);
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
