import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BackpressureError } from '../../../src/core/errors.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { emptyLogRecord } from '../../../src/inputs/opentelemetry/otlp.ts';
import { otlpRequest, startOtlpInput } from '../../support/otlp.ts';
import { RedisServer } from '../../support/redis.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * OTLP → Estuary (redis buffer) → OTLP, with the Estuary process SIGKILLed while requests are
 * being sent and while everything acked is still buffered (the collector refusing with 503),
 * then started again: every record a sender got a 200 for reaches the collector, with its
 * attributes and its nanosecond time. Duplicates are allowed (at-least-once), losses are not.
 */

const dir = mkdtempSync(join(tmpdir(), 'estuary-otlp-crash-'));
const redis = await RedisServer.start();
const children = new Set<ChildProcess>();
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const close of closers) await close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const PER_REQUEST = 10;

/** One export request: records seq·10 … seq·10+9, each with its seq as an attribute and a nanosecond time. */
function request(seq: number): Buffer {
  const records = Array.from({ length: PER_REQUEST }, (_, i) => {
    const id = seq * PER_REQUEST + i;
    return {
      ...emptyLogRecord(),
      timeUnixNano: 1_700_000_000_000_000_000n + BigInt(id),
      body: `record ${id}`,
      attributes: { id },
    };
  });
  return otlpRequest(records, { 'service.name': 'crash-test' });
}

describe('opentelemetry in and out over the redis buffer, Estuary SIGKILLed', () => {
  it('nothing acked is lost', async () => {
    let accepting = false;
    const collector = await startOtlpInput({}, async (batch) => {
      if (!accepting) throw new BackpressureError('the collector is not taking anything yet');
      collector.batches.push(batch);
    });
    closers.push(() => collector.input.stop());
    const [inPort, adminPort] = [await freePort(), await freePort()];
    const config = join(dir, 'estuary.yaml');
    writeFileSync(
      config,
      `service:
  log_level: warn
  http: { listen: 127.0.0.1, port: ${adminPort} }
  buffer: { type: redis, redis_url: "${redis.url}", flush_interval: 50ms, recovery_timeout: 1s }
inputs:
  - { type: opentelemetry, listen: 127.0.0.1, port: ${inPort}, protocols: [http] }
outputs:
  - type: opentelemetry
    id: collector
    endpoint: ${collector.url}
    buffer: { retry: { wait: 100ms, max_interval: 300ms, randomize: false } }
`,
    );
    const start = async () => {
      const child = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      children.add(child);
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`estuary exited: ${stderr}`);
          return (await fetch(`http://127.0.0.1:${adminPort}/readyz`).catch(() => undefined))?.status === 200;
        },
        { timeoutMs: 15_000, what: 'estuary ready' },
      );
      return { child, exited };
    };
    const send = async (seq: number) => {
      const res = await fetch(`http://127.0.0.1:${inPort}/v1/logs`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body: request(seq),
      }).catch(() => undefined);
      return res?.status === 200;
    };
    const acked = new Set<number>();

    const first = await start();
    // Acked while the collector refuses: all of it waits in Redis.
    for (let seq = 0; seq < 10; seq++) {
      assert.ok(await send(seq), `request ${seq} acked`);
      acked.add(seq);
    }
    // More requests in flight when the process dies: those answered 200 must arrive too.
    const inFlight = Array.from({ length: 10 }, (_, i) => 10 + i).map(async (seq) => {
      if (await send(seq)) acked.add(seq);
    });
    await waitFor(() => acked.size > 10, { what: 'one of the in-flight requests acked' });
    first.child.kill('SIGKILL');
    await Promise.all(inFlight);
    await first.exited;
    assert.equal(collector.entries().length, 0, 'nothing delivered before the crash');

    accepting = true;
    const second = await start();
    const expected = [...acked].flatMap((seq) =>
      Array.from({ length: PER_REQUEST }, (_, i) => seq * PER_REQUEST + i),
    );
    const seen = () => new Set(collector.entries().map((e) => (e.record.attributes as { id: number }).id));
    await waitFor(() => expected.every((id) => seen().has(id)), {
      timeoutMs: 30_000,
      what: `all ${expected.length} acked records at the collector (seen ${seen().size})`,
    });
    for (const e of collector.entries()) {
      const id = (e.record.attributes as { id: number }).id;
      assert.equal(e.record.log, `record ${id}`);
      assert.ok(e.time.equals(new EventTime(1_700_000_000, id)), `record ${id} at ${e.time.toIso()}`);
      assert.equal((e.record.resource as Record<string, unknown>)['service.name'], 'crash-test');
    }
    second.child.kill('SIGTERM');
    await second.exited;
  });
});
