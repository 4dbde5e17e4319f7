import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { type Batch, decodeEntries, makeBatch } from '../../src/core/batch.ts';
import { BackpressureError } from '../../src/core/errors.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { pack } from '../../src/core/msgpack.ts';
import { forwardInput } from '../../src/inputs/forward/index.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { encodePing, parseHelo } from '../../src/protocol/forward/handshake.ts';
import {
  encodeForwardMode,
  encodeMessageMode,
  encodePackedForward,
} from '../../src/protocol/forward/modes.ts';
import { metricValue, RawClient, startForward, stopAllForward } from '../support/forward-client.ts';
import { selfSignedCert } from '../support/tls.ts';
import { waitFor } from '../support/wait.ts';

after(stopAllForward);

const T = new EventTime(1700000000, 987654321);
const records = (b: Batch | undefined) => decodeEntries(b!.payload).map((e) => e.record);
const lbl = { plugin_id: 'fwd', type: 'forward' };

describe('forward input — modes over TCP', () => {
  it('takes every mode, several messages per write and a message split over many writes', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    const payload = makeBatch('x', [
      { time: T, record: { p: 1 } },
      { time: T, record: { p: 2 } },
    ]).payload;
    const all = Buffer.concat([
      encodeMessageMode('m', T, { a: 1 }),
      Buffer.from([0xc0]), // keepalive
      encodeForwardMode('f', [{ time: T, record: { f: 1 } }]),
      encodePackedForward('p', payload, { size: 2 }),
      encodePackedForward('z', gzipSync(payload), { compressed: 'gzip' }),
    ]);
    await c.send(all.subarray(0, 40));
    for (let i = 40; i < all.length; i += 3) await c.send(all.subarray(i, i + 3));
    await waitFor(() => h.batches.length === 4, { what: '4 batches' });
    assert.deepEqual(
      h.batches.map((b) => [b.tag, b.count]),
      [
        ['m', 1],
        ['f', 1],
        ['p', 2],
        ['z', 2],
      ],
    );
    assert.deepEqual(decodeEntries(h.batches[0]!.payload)[0]!.time, T);
    assert.ok(Buffer.from(h.batches[2]!.payload).equals(payload), 'PackedForward bytes passed through');
    assert.equal(c.frames.length, 0, 'no reply without option.chunk');
    assert.equal(await metricValue(h.metrics.inputRecords, lbl), 6);
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'ok' }), 4);
    assert.equal(await metricValue(h.metrics.inputBytes, lbl), all.length);
    assert.equal(await metricValue(h.metrics.forwardConnections, lbl), 1);
    c.close();
    await waitFor(async () => (await metricValue(h.metrics.forwardConnections, lbl)) === 0, {
      what: 'gauge back to 0',
    });
  });

  it('JSON mode when the first byte is [ : acks in JSON', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port }, true);
    await c.send('["app.json",1700000000,{"msg":"hi"},{"chunk":"j1"}]\n["app.json",[[1700000001,{"n":2}]]]');
    await waitFor(() => c.texts.join('') === '{"ack":"j1"}', { what: 'JSON ack' });
    // Read together, one tag: one batch.
    assert.deepEqual(h.batches.map(records), [[{ msg: 'hi' }, { n: 2 }]]);
    c.close();
  });

  it('add_tag_prefix, source_address_key and source_hostname_key like Fluentd', async () => {
    const h = await startForward({
      add_tag_prefix: 'edge',
      source_address_key: 'source_ip',
      source_hostname_key: 'source_host',
    });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('app', T, { a: 1 }));
    await waitFor(() => h.batches.length === 1, { what: 'batch' });
    assert.equal(h.batches[0]!.tag, 'edge.app');
    const [record] = records(h.batches[0]);
    assert.equal(record!.source_ip, '127.0.0.1');
    assert.equal(typeof record!.source_host, 'string');
    assert.ok((record!.source_host as string).length > 0);
    c.close();
  });
});

describe('forward input — acknowledgements', () => {
  it('acks {"ack": chunk} only after emit resolves, pausing reads meanwhile', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const seen: Batch[] = [];
    const h = await startForward({}, async (batch, options) => {
      assert.deepEqual(options, { wait: true });
      seen.push(batch);
      await gate;
    });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('a', T, { n: 1 }, { chunk: 'c-1' }));
    await waitFor(() => seen.length === 1, { what: 'first emit' });
    await c.send(encodeMessageMode('a', T, { n: 2 }, { chunk: 'c-2' }));
    await new Promise((r) => setTimeout(r, 100)); // room for a premature ack or a second emit
    assert.equal(c.frames.length, 0, 'no ack before the batch is durable');
    assert.equal(seen.length, 1, 'the next message waits while the socket is paused');
    release();
    assert.deepEqual(await c.frame(0), { ack: 'c-1' });
    assert.deepEqual(await c.frame(1), { ack: 'c-2' });
    assert.equal(seen.length, 2);
    const latency = await h.metrics.ackLatency.get();
    const sum = latency.values.find((v) => v.metricName === 'estuary_ack_latency_seconds_sum')?.value ?? 0;
    assert.ok(sum >= 0.09, `ack latency ${sum}s`);
    c.close();
  });

  it('no ack and the connection closed when emit fails (the sender retries)', async () => {
    const h = await startForward({}, async () => {
      throw new BackpressureError('buffer full');
    });
    const c = await RawClient.connect({ port: h.port });
    await c.send(
      encodePackedForward('a', makeBatch('x', [{ time: T, record: { a: 1 } }]).payload, { chunk: 'c' }),
    );
    await c.waitClosed();
    assert.equal(c.frames.length, 0);
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'backpressure' }), 1);
  });

  it('dedupe_window: a re-sent chunk is acked again but emitted once', async () => {
    const h = await startForward();
    const frame = encodePackedForward('dup', makeBatch('x', [{ time: T, record: { a: 1 } }]).payload, {
      chunk: 'same-chunk',
    });
    const first = await RawClient.connect({ port: h.port });
    await first.send(frame);
    assert.deepEqual(await first.frame(0), { ack: 'same-chunk' });
    first.close();
    const again = await RawClient.connect({ port: h.port });
    await again.send(frame);
    assert.deepEqual(await again.frame(0), { ack: 'same-chunk' });
    assert.equal(h.batches.length, 1);
    assert.equal(await metricValue(h.metrics.forwardDuplicateChunks, lbl), 1);
    // Another tag with the same id is another chunk.
    await again.send(
      encodePackedForward('other', makeBatch('x', [{ time: T, record: { a: 1 } }]).payload, {
        chunk: 'same-chunk',
      }),
    );
    await again.frame(1);
    assert.equal(h.batches.length, 2);
    again.close();
    // Off: every copy is emitted.
    const off = await startForward({ dedupe_window: 0 });
    const c = await RawClient.connect({ port: off.port });
    await c.send(Buffer.concat([frame, frame]));
    await c.frame(1);
    assert.equal(off.batches.length, 2);
    c.close();
  });

  it('option.size that does not match is logged once, the records kept', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    await c.send(
      encodePackedForward('s', makeBatch('x', [{ time: T, record: { a: 1 } }]).payload, {
        size: 5,
        chunk: 'k',
      }),
    );
    await c.frame(0);
    assert.equal(h.batches[0]!.count, 1);
    assert.ok(h.logs.some((l) => /option.size does not match/.test(String(l.msg)) && l.size === 5));
    c.close();
  });

  it('keepalive false closes after the first message (Fluentd deny_keepalive)', async () => {
    const h = await startForward({ keepalive: false });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('a', T, { a: 1 }, { chunk: 'only' }));
    assert.deepEqual(await c.frame(0), { ack: 'only' });
    await c.waitClosed();
  });

  it('max_connection_age: the message in flight is acked, then the connection closes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let emits = 0;
    const h = await startForward({ max_connection_age: '200ms' }, async () => {
      emits += 1;
      await gate;
    });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('a', T, { a: 1 }, { chunk: 'in-flight' }));
    await waitFor(() => emits === 1, { what: 'emit' });
    await new Promise((r) => setTimeout(r, 300)); // past the age
    assert.equal(c.closed, false, 'not closed while a message is in flight');
    release();
    assert.deepEqual(await c.frame(0), { ack: 'in-flight' });
    await c.waitClosed();
    // An idle connection simply closes once the age passes.
    const idle = await RawClient.connect({ port: h.port });
    await idle.waitClosed();
  });

  it('fluent_signal metrics/traces: acked, counted as dropped, one warning', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    for (let i = 0; i < 3; i++)
      await c.send(
        encodePackedForward('m', Buffer.from('cmetrics blob'), { fluent_signal: 1, chunk: `m${i}` }),
      );
    await c.send(encodePackedForward('t', Buffer.from('ctraces blob'), { fluent_signal: 2 }));
    await c.send(
      encodePackedForward('l', makeBatch('x', [{ time: T, record: { a: 1 } }]).payload, {
        fluent_signal: 0,
        chunk: 'l',
      }),
    );
    assert.deepEqual(await c.frame(3), { ack: 'l' });
    assert.equal(h.batches.length, 1);
    assert.equal(await metricValue(h.metrics.recordsDropped, { reason: 'unsupported_signal_metrics' }), 3);
    assert.equal(await metricValue(h.metrics.recordsDropped, { reason: 'unsupported_signal_traces' }), 1);
    assert.equal(h.logs.filter((l) => /not supported/.test(String(l.msg))).length, 2);
    assert.equal(c.closed, false);
    c.close();
  });
});

describe('forward input — bad frames close only their connection', () => {
  it('malformed, unknown mode, oversize, too deep: one line with the peer, counted, others unaffected', async () => {
    const h = await startForward({ max_message_size: '64KiB', max_nesting_depth: 16 });
    const good = await RawClient.connect({ port: h.port });
    const cases: [string, Buffer][] = [
      ['malformed', Buffer.from([0xc1])],
      ['unknown_mode', pack(['t', { not: 'a time' }])],
      ['too_large', Buffer.from([0x92, 0xa1, 0x74, 0xc6, 0x7f, 0xff, 0xff, 0xff])],
      ['too_deep', Buffer.alloc(100, 0x91)],
      ['malformed', encodePackedForward('t', pack([1, 2, 3]))],
      // Inflating past max_decompressed_size (4 × 64 KiB), and a gzip payload that is no gzip.
      ['too_large', encodePackedForward('t', gzipSync(Buffer.alloc(1024 * 1024)), { compressed: 'gzip' })],
      [
        'malformed',
        encodePackedForward('t', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3, 4]), { compressed: 'gzip' }),
      ],
    ];
    for (const [i, [reason, bytes]] of cases.entries()) {
      const bad = await RawClient.connect({ port: h.port });
      await bad.send(bytes);
      await bad.waitClosed();
      assert.ok(
        (await metricValue(h.metrics.forwardBadFrames, { ...lbl, reason })) >= 1,
        `counted as ${reason}`,
      );
      await good.send(encodeMessageMode('ok', T, { reason }, { chunk: `${reason}-${i}` }));
      assert.deepEqual(await good.frame(i), { ack: `${reason}-${i}` });
    }
    assert.equal(h.batches.length, cases.length);
    assert.equal(good.closed, false);
    const line = h.logs.find((l) => l.msg === 'forward frame refused; connection closed');
    assert.match(String(line?.remote), /^127\.0\.0\.1:\d+$/);
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'too_large' }), 2);
    good.close();
  });

  it('a chunk id that is not a string of at most 128 bytes, or a binary tag, is malformed: closed, counted, nothing kept', async () => {
    const h = await startForward();
    const good = await RawClient.connect({ port: h.port });
    const cases: Buffer[] = [
      encodeMessageMode('t', T, { a: 1 }, { chunk: 'c'.repeat(1024 * 1024) }),
      encodeMessageMode('t', T, { a: 1 }, { chunk: 'c'.repeat(129) }),
      pack(['t', 1700000000, { a: 1 }, { chunk: 7 }]),
      pack(['t', 1700000000, { a: 1 }, { chunk: { id: 'x' } }]),
      Buffer.concat([Buffer.from([0x93, 0xc4, 0x01, 0x74]), pack(1700000000), pack({ a: 1 })]),
    ];
    for (const [i, bytes] of cases.entries()) {
      const bad = await RawClient.connect({ port: h.port });
      await bad.send(bytes);
      await bad.waitClosed();
      assert.equal(bad.frames.length, 0, `case ${i}: no ack`);
      assert.equal(await metricValue(h.metrics.forwardBadFrames, { ...lbl, reason: 'malformed' }), i + 1);
    }
    assert.equal(h.batches.length, 0);
    const id = 'p8n9gmxTQVC8/nh2wlKKeQ==';
    await good.send(encodeMessageMode('ok', T, { a: 1 }, { chunk: id }));
    assert.deepEqual(await good.frame(0), { ack: id });
    assert.equal(h.batches.length, 1);
    good.close();
  });

  it('acks the messages before a bad frame in the same write', async () => {
    const h = await startForward();
    const c = await RawClient.connect({ port: h.port });
    await c.send(
      Buffer.concat([encodeMessageMode('a', T, { a: 1 }, { chunk: 'before' }), Buffer.from([0xc1])]),
    );
    assert.deepEqual(await c.frame(0), { ack: 'before' });
    await c.waitClosed();
    assert.equal(h.batches.length, 1);
  });
});

describe('forward input — handshake', () => {
  async function handshake(port: number, creds: { sharedKey: string; username?: string; password?: string }) {
    const c = await RawClient.connect({ port });
    const helo = parseHelo((await waitFor(() => c.frames[0], { what: 'HELO' })) as Uint8Array)!;
    const { bytes } = encodePing(helo, { hostname: 'client-host', ...creds });
    await c.send(bytes);
    const answer = (await c.frame(1)) as unknown[];
    return { c, answer };
  }

  it('right key: PONG true, then messages are taken', async () => {
    const h = await startForward({ security: { self_hostname: 'estuary-test', shared_key: 'k3y' } });
    const { c, answer } = await handshake(h.port, { sharedKey: 'k3y' });
    assert.deepEqual(answer.slice(0, 4), ['PONG', true, '', 'estuary-test']);
    await c.send(encodeMessageMode('a', T, { a: 1 }, { chunk: 'after-auth' }));
    assert.deepEqual(await c.frame(2), { ack: 'after-auth' });
    c.close();
  });

  it('wrong key, wrong password, anonymous source: PONG false with the reason, closed, nothing taken', async () => {
    const h = await startForward({
      security: {
        shared_key: 'k3y',
        users: [{ username: 'fluent', password: 'pw' }],
        allow_anonymous_source: false,
        allow: ['127.0.0.0/8'],
      },
    });
    const wrongKey = await handshake(h.port, { sharedKey: 'nope', username: 'fluent', password: 'pw' });
    assert.deepEqual(wrongKey.answer, ['PONG', false, 'shared_key mismatch', '', '']);
    await wrongKey.c.waitClosed();
    const wrongPass = await handshake(h.port, { sharedKey: 'k3y', username: 'fluent', password: 'bad' });
    assert.deepEqual(wrongPass.answer, ['PONG', false, 'username/password mismatch', '', '']);
    await wrongPass.c.waitClosed();
    const right = await handshake(h.port, { sharedKey: 'k3y', username: 'fluent', password: 'pw' });
    assert.equal(right.answer[1], true);
    right.c.close();
    const outside = await startForward({
      security: { shared_key: 'k3y', allow_anonymous_source: false, allow: ['10.0.0.0/8', 'fd00::/8'] },
    });
    const denied = await handshake(outside.port, { sharedKey: 'k3y' });
    assert.deepEqual(denied.answer, ['PONG', false, "anonymous source host '127.0.0.1' denied", '', '']);
    await denied.c.waitClosed();
    assert.equal(await metricValue(h.metrics.inputRequests, { ...lbl, result: 'unauthorized' }), 2);
    assert.equal(h.batches.length + outside.batches.length, 0);
  });

  it('data sent without a handshake is refused, never accepted', async () => {
    const h = await startForward({ security: { shared_key: 'k3y' } });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('sneaky', T, { a: 1 }, { chunk: 'x' }));
    const answer = (await c.frame(1)) as unknown[];
    assert.deepEqual(answer, ['PONG', false, 'invalid ping message', '', '']);
    await c.waitClosed();
    assert.equal(h.batches.length, 0);
  });

  it('refuses a config Fluentd refuses', () => {
    const deps = { id: 'x', logger: silent(), metrics: new Metrics(), configDir: '.' };
    const make = (o: Record<string, unknown>) => forwardInput.create(forwardInput.schema.parse(o), deps);
    assert.throws(
      () => make({ security: { shared_key: 'k', user_auth: true } }),
      /user_auth needs security.users/,
    );
    assert.throws(
      () => make({ security: { shared_key: 'k', allow_anonymous_source: false } }),
      /needs security.allow/,
    );
    assert.equal(
      forwardInput.schema.safeParse({ security: { shared_key: 'k', allow: ['not-an-ip'] } }).success,
      false,
    );
    assert.equal(forwardInput.schema.safeParse({ security: {} }).success, false);
  });
});

describe('forward input — transports and heartbeat', () => {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-fwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  before(() => {
    selfSignedCert(dir);
  });

  it('answers UDP heartbeats on the same port with one 0x00 byte', async () => {
    const h = await startForward();
    const udp = createSocket('udp4');
    const reply = new Promise<Buffer>((resolve) => udp.once('message', (m) => resolve(m)));
    udp.send(Buffer.from([0]), h.port, '127.0.0.1');
    assert.deepEqual(await reply, Buffer.from([0]));
    udp.close();
  });

  it('listens on a Unix socket with unix_path (and its mode with unix_perm)', async () => {
    const path = join(dir, 'fwd.sock');
    const h = await startForward({ unix_path: path, unix_perm: '0660' });
    assert.equal(statSync(path).mode & 0o777, 0o660);
    const c = await RawClient.connect({ path });
    await c.send(
      encodeMessageMode(
        'docker.abc',
        1700000000,
        { container_id: 'abc', log: 'hi', source: 'stdout' },
        { chunk: 'u' },
      ),
    );
    assert.deepEqual(await c.frame(0), { ack: 'u' });
    assert.deepEqual(records(h.batches[0]), [{ container_id: 'abc', log: 'hi', source: 'stdout' }]);
    c.close();
    await h.input.stop();
  });

  it('speaks TLS, and requires client certificates with client_auth', async () => {
    const h = await startForward({ tls: { cert_file: 'cert.pem', key_file: 'key.pem' } }, undefined, dir);
    const ca = readFileSync(join(dir, 'cert.pem'));
    const c = await RawClient.connect({ port: h.port, tls: { ca, servername: 'localhost' } });
    await c.send(encodeMessageMode('tls', T, { a: 1 }, { chunk: 't' }));
    assert.deepEqual(await c.frame(0), { ack: 't' });
    c.close();
    const strict = await startForward(
      { tls: { cert_file: 'cert.pem', key_file: 'key.pem', ca_file: 'cert.pem', client_auth: true } },
      undefined,
      dir,
    );
    await assert.rejects(async () => {
      const anon = await RawClient.connect({ port: strict.port, tls: { ca } });
      await anon.send(encodeMessageMode('tls', T, { a: 1 }, { chunk: 't' }));
      await anon.frame(0, 1000);
    });
    const key = readFileSync(join(dir, 'key.pem'));
    const mutual = await RawClient.connect({ port: strict.port, tls: { ca, cert: ca, key } });
    await mutual.send(encodeMessageMode('tls', T, { a: 1 }, { chunk: 'm' }));
    assert.deepEqual(await mutual.frame(0), { ack: 'm' });
    mutual.close();
  });

  it('connection_limit: connections past it are closed at once and counted', async () => {
    const h = await startForward({ connection_limit: 2 });
    const a = await RawClient.connect({ port: h.port });
    const b = await RawClient.connect({ port: h.port });
    await waitFor(() => h.input.connectionCount === 2, { what: '2 connections' });
    const c = await RawClient.connect({ port: h.port });
    await c.waitClosed();
    assert.equal(await metricValue(h.metrics.forwardConnectionsRefused, lbl), 1);
    a.close();
    b.close();
  });

  it('idle_timeout closes a silent connection', async () => {
    const h = await startForward({ idle_timeout: '150ms' });
    const c = await RawClient.connect({ port: h.port });
    await c.waitClosed();
    assert.equal(h.batches.length, 0);
  });
});

describe('forward input — lifecycle', () => {
  it('is ready while listening, stops safely twice and without start, frees its port', async () => {
    const h = await startForward();
    assert.equal(h.input.ready(), true);
    assert.ok(
      h.logs.some((l) => l.msg === 'forward input listening' && l.address === `tcp://127.0.0.1:${h.port}`),
    );
    const c = await RawClient.connect({ port: h.port });
    await h.input.stop();
    await h.input.stop();
    assert.equal(h.input.ready(), false);
    await c.waitClosed();
    const idle = forwardInput.create(forwardInput.schema.parse({}), {
      id: 'x',
      logger: silent(),
      metrics: new Metrics(),
      configDir: '.',
    });
    assert.equal(idle.ready(), false);
    await idle.stop();
    await idle.stop();
  });

  it('lets a message in flight finish (and be acked) when stopping', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let emits = 0;
    const h = await startForward({}, async () => {
      emits += 1;
      await gate;
    });
    const c = await RawClient.connect({ port: h.port });
    await c.send(encodeMessageMode('a', T, { a: 1 }, { chunk: 'last' }));
    await waitFor(() => emits === 1, { what: 'emit' });
    const stopping = h.input.stop();
    release();
    assert.deepEqual(await c.frame(0), { ack: 'last' });
    await stopping;
    await c.waitClosed();
  });

  it('has Fluentd-like defaults and a strict schema', () => {
    const o = forwardInput.schema.parse({}) as Record<string, unknown>;
    assert.equal(o.port, 24224);
    assert.equal(o.listen, '0.0.0.0');
    assert.equal(o.max_message_size, 32 * 1024 * 1024);
    assert.equal(o.dedupe_window, 300_000);
    assert.equal(o.max_connection_age, 0);
    assert.equal(o.keepalive, true);
    assert.equal(forwardInput.schema.safeParse({ bind: '0.0.0.0' }).success, false);
  });
});

function silent() {
  return pino({ level: 'silent' });
}
