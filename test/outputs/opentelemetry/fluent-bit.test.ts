import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeChunk } from '../../../src/buffer/chunk.ts';
import { makeBatch, toEntry } from '../../../src/core/batch.ts';
import type { Entry } from '../../../src/core/entry.ts';
import { EventTime, FLUENT_BIT_GROUP_START } from '../../../src/core/event-time.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { opentelemetryOutput } from '../../../src/outputs/opentelemetry/index.ts';
import { startFluentBit } from '../../support/fluent-bit.ts';
import { forwardReceiver } from '../../support/forward-receiver.ts';
import { freePort, waitFor } from '../../support/wait.ts';

/**
 * Estuary's output into Fluent Bit 5.1.1's `opentelemetry` input (../shared/interop), which
 * forwards what it got, metadata kept, to a forward receiver of ours: every record arrives
 * with its attributes, severity, ids, resource, scope and nanosecond time as Fluent Bit reads
 * OTLP (its `otlp` metadata and group attributes).
 */

const dir = mkdtempSync(join(tmpdir(), 'estuary-otlp-out-fluent-bit-'));
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const stop of stops) await stop();
  rmSync(dir, { recursive: true, force: true });
});

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const SPAN_ID = 'b7ad6b7169203331';

/** What the receiver got from Fluent Bit: the record entries, and the group start entries (resource, scope). */
function received(messages: unknown[][]): { records: Entry[]; groups: Entry[] } {
  const records: Entry[] = [];
  const groups: Entry[] = [];
  for (const [, entries] of messages) {
    for (const item of entries as unknown[]) {
      const [[time, metadata], record] = item as [[EventTime, unknown], unknown];
      if (time.sec === FLUENT_BIT_GROUP_START)
        groups.push({ time, record: record as never, metadata: metadata as never });
      else {
        const entry = toEntry(item);
        if (entry) records.push(entry);
      }
    }
  }
  return { records, groups };
}

describe("Estuary's opentelemetry output into Fluent Bit's opentelemetry input", () => {
  it('every record arrives with its attributes, severity, ids, resource, scope and nanosecond time', async (t) => {
    const receiver = await forwardReceiver();
    stops.push(receiver.close);
    const port = await freePort();
    const fb = startFluentBit(
      t,
      dir,
      `[SERVICE]
    flush 0.2
    log_level info
[INPUT]
    name opentelemetry
    listen 127.0.0.1
    port ${port}
    tag otel
[OUTPUT]
    name forward
    match *
    host 127.0.0.1
    port ${receiver.port}
    retain_metadata_in_forward_mode true
`,
    );
    if (!fb) return;
    stops.push(fb.stop);
    const output = opentelemetryOutput.create(
      opentelemetryOutput.schema.parse({ endpoint: `http://127.0.0.1:${port}` }),
      { id: 'otlp', logger: silentLogger(), metrics: new Metrics(), configDir: dir },
    );
    stops.push(async () => output.stop?.());
    const entries = [
      {
        time: new EventTime(1_700_000_000, 123_456_789),
        record: {
          log: 'payment declined',
          attributes: { 'http.status_code': 402, nested: { ok: false } },
          severity_text: 'WARN',
          severity_number: 13,
          trace_id: TRACE_ID,
          span_id: SPAN_ID,
          resource: { 'service.name': 'checkout' },
          scope: { name: 'cart', version: '1.2.3' },
        },
      },
      { time: new EventTime(1_700_000_001, 1), record: { msg: 'a record from forward', n: 1 } },
    ];
    const chunk = makeChunk('c', [makeBatch('app', entries)], 0);
    // Fluent Bit may still be starting: the driver would retry; here the test does.
    await waitFor(
      async () => {
        try {
          return (await output.write(chunk, { signal: AbortSignal.timeout(5000) })) === undefined;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15_000, what: `Fluent Bit to take the request (it said: ${fb.output().slice(-400)})` },
    );
    await waitFor(() => received(receiver.messages).records.length === 2, {
      timeoutMs: 15_000,
      what: 'both records forwarded by Fluent Bit',
    });
    const { records, groups } = received(receiver.messages);
    const [first, second] = records;
    assert.ok(first!.time.equals(new EventTime(1_700_000_000, 123_456_789)), first!.time.toIso());
    assert.ok(second!.time.equals(new EventTime(1_700_000_001, 1)), second!.time.toIso());
    assert.deepEqual(first!.record, { log: 'payment declined' });
    const otlp = (first!.metadata as { otlp: Record<string, unknown> }).otlp;
    assert.deepEqual(otlp.attributes, { 'http.status_code': 402, nested: { ok: false } });
    assert.equal(otlp.severity_text, 'WARN');
    assert.equal(otlp.severity_number, 13);
    assert.equal(Buffer.from(otlp.trace_id as Uint8Array).toString('hex'), TRACE_ID);
    assert.equal(Buffer.from(otlp.span_id as Uint8Array).toString('hex'), SPAN_ID);
    assert.deepEqual(second!.record, { msg: 'a record from forward', n: 1 });
    const group = groups[0]!.record as { resource: { attributes: unknown }; scope: unknown };
    assert.deepEqual(group.resource.attributes, { 'service.name': 'checkout' });
    assert.deepEqual(group.scope, { name: 'cart', version: '1.2.3' });
  });
});
