import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FluentClient, EventTime as FluentOrgEventTime, FluentSocketEvent } from '@fluent-org/logger';
import fluentLogger from 'fluent-logger';
import type { TaggedEntry } from '../../src/core/entry.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { startEstuary } from '../support/estuary.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { freePort, waitFor } from '../support/wait.ts';

/**
 * Real clients, end to end: client → forward input → pipeline → memory buffer → `scripted`
 * output. Nothing of ours on the client side.
 */

const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function estuary(id: string, input: string): Promise<{ port: number; delivered: TaggedEntry[] }> {
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: forward, listen: 127.0.0.1, port: ${port}${input} }
outputs:
  - { type: scripted, id: ${id}, match: "**" }
`);
  stops.push(e.stop);
  return { port, delivered: scriptedInstances.get(id)!.delivered };
}

const SECURITY = `, security: { self_hostname: estuary-e2e, shared_key: s3cret, users: [{ username: fluent, password: pw }] }`;

describe('forward input — @fluent-org/logger', () => {
  for (const eventMode of ['Message', 'Forward', 'PackedForward', 'CompressedPackedForward'] as const) {
    it(`${eventMode} with ack, shared key and user, EventTime nanoseconds end to end`, async () => {
      const { port, delivered } = await estuary(`org-${eventMode}`, SECURITY);
      const client = new FluentClient('org', {
        eventMode,
        socket: { host: '127.0.0.1', port },
        security: { clientHostname: 'client-1', sharedKey: 's3cret', username: 'fluent', password: 'pw' },
        ack: { ackTimeout: 3000 },
      });
      // emit resolves once the server acked: i.e. once it is in the buffer.
      await Promise.all([
        client.emit('web', { msg: 'one' }, new FluentOrgEventTime(1700000000, 123456789)),
        client.emit('web', { msg: 'two' }, new FluentOrgEventTime(1700000001, 999999999)),
      ]);
      await client.disconnect();
      await waitFor(() => delivered.length === 2, { what: 'delivery' });
      assert.deepEqual(
        delivered.map((e) => [e.tag, e.record, e.time]),
        [
          ['org.web', { msg: 'one' }, new EventTime(1700000000, 123456789)],
          ['org.web', { msg: 'two' }, new EventTime(1700000001, 999999999)],
        ],
      );
    });
  }

  it('without ack (PackedForward, integer seconds)', async () => {
    const { port, delivered } = await estuary('org-noack', '');
    const client = new FluentClient('plain', { socket: { host: '127.0.0.1', port } });
    await client.emit('a', { n: 1 }, new Date(1700000000_000));
    await client.emit('b', { n: 2 }, new Date(1700000005_000));
    await client.disconnect();
    await waitFor(() => delivered.length === 2, { what: 'delivery' });
    assert.deepEqual(
      delivered.map((e) => [e.tag, e.record, e.time.sec]),
      [
        ['plain.a', { n: 1 }, 1700000000],
        ['plain.b', { n: 2 }, 1700000005],
      ],
    );
  });

  it('a wrong shared key is refused and nothing is delivered', async () => {
    const { port, delivered } = await estuary('org-wrong', SECURITY);
    const client = new FluentClient('x', {
      socket: { host: '127.0.0.1', port, disableReconnect: true },
      security: { clientHostname: 'client-1', sharedKey: 'wrong', username: 'fluent', password: 'pw' },
      ack: { ackTimeout: 500 },
    });
    const errors: Error[] = [];
    client.socketOn(FluentSocketEvent.ERROR, (err: Error) => errors.push(err));
    // With reconnection off the client waits for an explicit connect.
    client.connect().catch(() => {});
    const emitted = client.emit('a', { n: 1 }).then(
      () => 'acked',
      () => 'refused',
    );
    await waitFor(() => errors.length > 0, { what: 'the client to see the refusal' });
    await client.disconnect().catch(() => {});
    assert.notEqual(await Promise.race([emitted, Promise.resolve('pending')]), 'acked');
    assert.ok(
      errors.some((e) => /shared_key mismatch/.test(e.message)),
      errors.map((e) => e.message).join('; '),
    );
    assert.equal(delivered.length, 0);
  });
});

type Sender = {
  emit(label: string, data: Record<string, unknown>, timestamp: unknown, cb: (err?: Error) => void): void;
  end(label: string, data: Record<string, unknown>, cb: (err?: Error) => void): void;
};
const createSender = fluentLogger.createFluentSender as unknown as (tag: string, options: object) => Sender;
const LoggerEventTime = fluentLogger.EventTime as unknown as new (sec: number, nsec: number) => object;

function send(sender: Sender, label: string, data: Record<string, unknown>, time: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    sender.emit(label, data, time, (err) => (err ? reject(err) : resolve())),
  );
}

describe('forward input — fluent-logger (fluent-logger-node)', () => {
  it('Message mode with requireAckResponse and a shared key', async () => {
    const { port, delivered } = await estuary('node-ack', SECURITY);
    const sender = createSender('node', {
      host: '127.0.0.1',
      port,
      requireAckResponse: true,
      ackResponseTimeout: 3000,
      security: { clientHostname: 'node-client', sharedKey: 's3cret', username: 'fluent', password: 'pw' },
      internalLogger: { info() {}, error() {} },
    });
    await send(sender, 'app', { msg: 'acked' }, new LoggerEventTime(1700000000, 5));
    await new Promise<void>((resolve) => sender.end('app', { msg: 'last' }, () => resolve()));
    await waitFor(() => delivered.length === 2, { what: 'delivery' });
    assert.deepEqual(delivered[0]!.record, { msg: 'acked' });
    assert.deepEqual(delivered[0]!.time, new EventTime(1700000000, 5));
    assert.equal(delivered[0]!.tag, 'node.app');
  });

  for (const eventMode of ['PackedForward', 'CompressedPackedForward']) {
    it(`${eventMode} without ack`, async () => {
      const { port, delivered } = await estuary(`node-${eventMode}`, '');
      const sender = createSender('node', {
        host: '127.0.0.1',
        port,
        eventMode,
        internalLogger: { info() {}, error() {} },
      });
      await send(sender, 'packed', { n: 1 }, 1700000000);
      await new Promise<void>((resolve) => sender.end('packed', { n: 2 }, () => resolve()));
      await waitFor(() => delivered.length === 2, { what: 'delivery' });
      assert.deepEqual(
        delivered.map((e) => e.record),
        [{ n: 1 }, { n: 2 }],
      );
    });
  }
});

const python = '/usr/bin/python3';
const hasPythonFluent = spawnSync(python, ['-c', 'import fluent.sender, msgpack']).status === 0;

describe('forward input — Debian python3-fluent-logger', {
  skip: !hasPythonFluent && 'python3-fluent-logger not installed',
}, () => {
  const script = `
import sys
from fluent import sender
host, port, ns = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "ns"
s = sender.FluentSender("py", host=host, port=port, nanosecond_precision=ns)
ok = s.emit_with_time("app", 1700000000.25, {"msg": "from python", "n": 1}) and s.emit("app", {"n": 2})
s.close()
sys.exit(0 if ok else 1)
`;
  const run = (host: string, port: number, ns: boolean) =>
    new Promise<number>((resolve) => {
      // Async, so the in-process server can answer while Python sends.
      import('node:child_process').then(({ spawn }) => {
        const p = spawn(python, ['-c', script, host, String(port), ns ? 'ns' : 'int'], { stdio: 'ignore' });
        p.on('close', (code) => resolve(code ?? 1));
      });
    });

  it('over TCP with nanosecond precision (EventTime)', async () => {
    const { port, delivered } = await estuary('py-tcp', '');
    assert.equal(await run('127.0.0.1', port, true), 0);
    await waitFor(() => delivered.length === 2, { what: 'delivery' });
    assert.equal(delivered[0]!.tag, 'py.app');
    assert.deepEqual(delivered[0]!.record, { msg: 'from python', n: 1 });
    assert.deepEqual(delivered[0]!.time, new EventTime(1700000000, 250_000_000));
  });

  it('over a Unix socket: float seconds as sent, integer seconds from emit()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-py-'));
    stops.push(async () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'fwd.sock');
    const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: forward, unix_path: ${path} }
outputs:
  - { type: scripted, id: py-unix, match: "**" }
`);
    stops.push(e.stop);
    const delivered = scriptedInstances.get('py-unix')!.delivered;
    assert.equal(await run(`unix://${path}`, 0, false), 0);
    await waitFor(() => delivered.length === 2, { what: 'delivery' });
    assert.deepEqual(delivered[0]!.time, new EventTime(1700000000, 250_000_000));
    assert.equal(delivered[1]!.time.nsec, 0);
  });
});
