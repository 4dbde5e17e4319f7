import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startFluentBit } from '../../support/fluent-bit.ts';
import { type OtlpHarness, startOtlpInput } from '../../support/otlp.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * Fluent Bit 5.1.1's `opentelemetry` output (../shared/interop) sending to Estuary's input:
 * over HTTP with gzip, and over gRPC. Its body key, its record keys as attributes and the
 * severity it takes from a record key arrive where the README says, time to the nanosecond.
 */

const dir = mkdtempSync(join(tmpdir(), 'estuary-otlp-fluent-bit-'));
const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const stop of stops) await stop();
  rmSync(dir, { recursive: true, force: true });
});

const SAMPLES = 3;

function config(h: OtlpHarness): string {
  return `[SERVICE]
    flush 0.2
    log_level info
[INPUT]
    name dummy
    tag via.http
    dummy {"message": "over http", "level": "WARN", "n": 7}
    samples ${SAMPLES}
    rate 20
[INPUT]
    name dummy
    tag via.grpc
    dummy {"message": "over grpc", "level": "INFO", "n": 8}
    samples ${SAMPLES}
    rate 20
[OUTPUT]
    name opentelemetry
    match via.http
    host 127.0.0.1
    port ${h.input.httpPort}
    logs_uri /v1/logs
    logs_body_key $message
    logs_body_key_attributes true
    logs_severity_text_message_key level
    compress gzip
[OUTPUT]
    name opentelemetry
    match via.grpc
    host 127.0.0.1
    port ${h.grpcPort}
    grpc on
    # Fluent Bit 5.1.1 fails a gRPC call on a kept connection ("connection error", retried
    # seconds later; a plain Node http2 server sees the same): a connection per flush.
    net.keepalive off
    logs_body_key $message
    logs_body_key_attributes true
`;
}

describe("Fluent Bit's opentelemetry output into Estuary", () => {
  it('HTTP (gzip) and gRPC: body, attributes, severity and nanosecond times arrive', async (t) => {
    const h = await startOtlpInput({ protocols: ['http', 'grpc'] });
    stops.push(() => h.input.stop());
    const started = Date.now();
    const fb = startFluentBit(t, dir, config(h));
    if (!fb) return;
    stops.push(fb.stop);
    await waitFor(() => h.entries().length === 2 * SAMPLES, {
      timeoutMs: 15_000,
      what: `${2 * SAMPLES} records from Fluent Bit (it said: ${fb.output().slice(-600)})`,
    });
    const byBody = (log: string) => h.entries().filter((e) => e.record.log === log);
    for (const e of byBody('over http')) {
      assert.deepEqual(e.record, {
        log: 'over http',
        attributes: { level: 'WARN', n: 7 },
        severity_text: 'WARN',
      });
    }
    for (const e of byBody('over grpc'))
      assert.deepEqual(e.record, { log: 'over grpc', attributes: { level: 'INFO', n: 8 } });
    assert.equal(byBody('over http').length, SAMPLES);
    assert.equal(byBody('over grpc').length, SAMPLES);
    for (const e of h.entries()) {
      // Fluent Bit's own clock, to the nanosecond: not a whole millisecond, and within the run.
      assert.ok(e.time.sec * 1000 >= started - 1000 && e.time.sec * 1000 <= Date.now(), e.time.toIso());
      assert.equal(e.tag, 'otlp.logs');
    }
    assert.ok(
      h.entries().some((e) => e.time.nsec % 1_000_000 !== 0),
      'times carry nanoseconds',
    );
    assert.doesNotMatch(fb.output(), /\[error\]/);
  });
});
