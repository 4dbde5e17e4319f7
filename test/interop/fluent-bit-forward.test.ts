import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { parseSamples } from '../support/prom-text.ts';
import { selfSignedCert } from '../support/tls.ts';
import { waitFor } from '../support/wait.ts';
import { assertEachOnce, freePort, PAD, suite, tailingFluentBit } from './helpers.ts';

/**
 * Fluent Bit 5.1.1's `forward` output (../shared/interop) into Estuary's forward input, as the
 * DaemonSets our users run send: gzip, shared_key, TLS verified against the server's CA, and
 * require_ack_response. Fluent Bit tails a file of records with ids; each arrives once, and
 * Fluent Bit itself counts them delivered without a retry or an error.
 */

const interop = suite('fluent-bit-forward');
const { dir, cleanup } = interop;
const COUNT = 200;
const KEY = 'interop-shared-key';

async function estuary(id: string, input: string, buffer = '') {
  const port = await freePort();
  const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: forward, id: in, listen: 127.0.0.1, port: ${port}${input} }
outputs:
  - { type: scripted, id: ${id}, match: "**"${buffer} }
`);
  cleanup(e.stop);
  /** A counter of the forward input (0 before its first increment). */
  const metric = async (name: string, labels: Record<string, string> = {}) =>
    parseSamples(await e.metrics())
      .filter(
        (s) =>
          s.name === name &&
          Object.entries({ plugin_id: 'in', ...labels }).every(([k, v]) => s.labels[k] === v),
      )
      .reduce((sum, s) => sum + s.value, 0);
  return { port, delivered: scriptedInstances.get(id)!.delivered, metric, e };
}

describe("Fluent Bit's forward output into Estuary's forward input", () => {
  it('gzip, shared_key + self_hostname, TLS (verify on) and require_ack_response together: every record once', async (t) => {
    const { cert, key } = selfSignedCert(dir);
    const { port, delivered, metric } = await estuary(
      'fb-all',
      `, tls: { cert_file: ${cert}, key_file: ${key} }, security: { self_hostname: estuary-interop, shared_key: ${KEY} }`,
    );
    const fb = await tailingFluentBit(t, interop, {
      name: 'all',
      count: COUNT,
      tag: 'fb.all',
      output: `[OUTPUT]
    name                  forward
    match                 *
    host                  127.0.0.1
    port                  ${port}
    compress              gzip
    shared_key            ${KEY}
    self_hostname         fluent-bit-interop
    tls                   on
    tls.verify            on
    tls.ca_file           ${cert}
    tls.vhost             localhost
    require_ack_response  true
`,
    });
    if (!fb) return;
    const done = await fb.delivered('forward.0', COUNT);
    assert.equal(done.proc_records, COUNT, 'Fluent Bit sent each record once');
    assert.deepEqual([done.retries, done.errors, done.dropped_records], [0, 0, 0], 'no retry, error or drop');
    await waitFor(() => delivered.length >= COUNT, { what: `${COUNT} records delivered` });
    assertEachOnce(
      delivered.map((e) => e.record.id),
      COUNT,
      'delivered',
    );
    assert.equal(await metric('fluentd_input_status_num_records_total'), COUNT);
    for (const e of delivered) {
      assert.equal(e.tag, 'fb.all');
      assert.deepEqual(Object.keys(e.record).sort(), ['id', 'pad']);
      assert.equal(e.record.pad, PAD);
    }
    // Compressed on the wire: the padding alone would be COUNT × 300 bytes.
    const wire = await metric('estuary_input_bytes_total');
    assert.ok(wire < (COUNT * PAD.length) / 10, `gzip on the wire: ${wire} bytes`);
    assert.equal(await metric('estuary_input_requests_total', { result: 'unauthorized' }), 0);
    assert.doesNotMatch(fb.output(), /\[error\]/);
  });

  it('a wrong shared_key is refused: nothing delivered, Fluent Bit told so', async (t) => {
    const { port, delivered, metric } = await estuary(
      'fb-wrong-key',
      `, security: { self_hostname: estuary-interop, shared_key: ${KEY} }`,
    );
    const fb = await tailingFluentBit(t, interop, {
      name: 'wrong-key',
      count: 5,
      tag: 'fb.wrong',
      output: `[OUTPUT]
    name           forward
    match          *
    host           127.0.0.1
    port           ${port}
    shared_key     not-${KEY}
    self_hostname  fluent-bit-interop
`,
    });
    if (!fb) return;
    await waitFor(
      async () => (await metric('estuary_input_requests_total', { result: 'unauthorized' })) >= 1,
      {
        timeoutMs: 10_000,
        what: `a refused handshake (Fluent Bit said: ${fb.output().slice(-800)})`,
      },
    );
    await waitFor(() => /failed authorization: shared_key mismatch/.test(fb.output()), {
      what: `Fluent Bit to log the refusal (it said: ${fb.output().slice(-800)})`,
    });
    assert.equal(delivered.length, 0);
    assert.equal(await metric('fluentd_input_status_num_records_total'), 0);
  });

  it('require_ack_response: what the full buffer refused (no ack) is re-sent by Fluent Bit and arrives once', async (t) => {
    const { port, delivered, metric } = await estuary(
      'fb-ack',
      '',
      ', buffer: { total_limit_size: 32KiB, overflow_action: throw_exception }',
    );
    let release = () => {};
    scriptedInstances.get('fb-ack')!.script.push({ hold: new Promise<void>((r) => (release = r)) });
    const FIRST = 50;
    const fb = await tailingFluentBit(t, interop, {
      name: 'ack',
      count: FIRST,
      tag: 'fb.ack',
      // Fluent Bit retries within a second.
      service: '    scheduler.base  1\n    scheduler.cap   1\n',
      output: `[OUTPUT]
    name                  forward
    match                 *
    host                  127.0.0.1
    port                  ${port}
    require_ack_response  true
    retry_limit           no_limits
`,
    });
    if (!fb) return;
    cleanup(async () => release());
    // The first records fill most of the buffer and their write is held there.
    const sink = scriptedInstances.get('fb-ack')!;
    await waitFor(() => sink.writes.length === 1, { timeoutMs: 10_000, what: 'the held first write' });
    // The rest do not fit: refused, not acked, the connection closed.
    const rest = Array.from(
      { length: COUNT - FIRST },
      (_, i) => `${JSON.stringify({ id: FIRST + i + 1, pad: PAD })}\n`,
    );
    appendFileSync(fb.file, rest.join(''));
    await waitFor(
      async () => (await metric('estuary_input_requests_total', { result: 'backpressure' })) >= 1,
      {
        timeoutMs: 10_000,
        what: `a message refused for a full buffer (Fluent Bit said: ${fb.output().slice(-800)})`,
      },
    );
    assert.equal(delivered.length, 0, 'nothing delivered while the write is held');
    release();
    const done = await fb.delivered('forward.0', COUNT);
    assert.ok(done.retries >= 1, `Fluent Bit retried what was not acked (${JSON.stringify(done)})`);
    await waitFor(() => delivered.length >= COUNT, { what: `${COUNT} records delivered` });
    assertEachOnce(
      delivered.map((e) => e.record.id),
      COUNT,
      'delivered after the retry',
    );
    assert.equal(done.proc_records, COUNT);
  });
});
