import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { waitFor } from '../support/wait.ts';
import { assertEachOnce, freePort, PAD, suite, tailingFluentBit } from './helpers.ts';

/**
 * Fluent Bit 5.1.1's `http` output (../shared/interop) into Estuary's http input, in each of
 * its formats: json (an array, the time as a float `date`), json_lines and msgpack (its raw
 * chunk, EventTime). The tag comes from the URI; each record arrives once, with Fluent Bit's
 * time and without the `date` key.
 */

const interop = suite('fluent-bit-http');
const COUNT = 100;

describe("Fluent Bit's http output into Estuary's http input", () => {
  for (const format of ['json', 'json_lines', 'msgpack'] as const) {
    it(`format ${format}: every record once, tagged by the URI, with Fluent Bit's time`, async (t) => {
      const port = await freePort();
      const id = `fb-http-${format}`;
      const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - { type: http, id: in, listen: 127.0.0.1, port: ${port} }
outputs:
  - { type: scripted, id: ${id}, match: "**" }
`);
      interop.cleanup(e.stop);
      const delivered = scriptedInstances.get(id)!.delivered;
      const started = Date.now();
      const fb = await tailingFluentBit(t, interop, {
        name: format,
        count: COUNT,
        tag: 'fb.tail',
        output: `[OUTPUT]
    name    http
    match   *
    host    127.0.0.1
    port    ${port}
    uri     /fb.${format}
    format  ${format}
`,
      });
      if (!fb) return;
      const done = await fb.delivered('http.0', COUNT);
      assert.equal(done.proc_records, COUNT, 'Fluent Bit sent each record once');
      assert.deepEqual(
        [done.retries, done.errors, done.dropped_records],
        [0, 0, 0],
        'no retry, error or drop',
      );
      await waitFor(() => delivered.length >= COUNT, { what: `${COUNT} records delivered` });
      assertEachOnce(
        delivered.map((e) => e.record.id),
        COUNT,
        format,
      );
      for (const e of delivered) {
        assert.equal(e.tag, `fb.${format}`);
        assert.deepEqual(e.record, { id: e.record.id, pad: PAD });
        const ms = e.time.sec * 1000 + e.time.nsec / 1e6;
        assert.ok(ms >= started - 1000 && ms <= Date.now(), `Fluent Bit's time: ${e.time.toIso()}`);
      }
      // msgpack carries EventTime to the nanosecond; a float `date` carries microseconds.
      const nanos = delivered.filter((e) => e.time.nsec % 1000 !== 0).length;
      if (format === 'msgpack') assert.ok(nanos > 0, 'nanoseconds kept from the EventTime');
      else
        assert.ok(
          delivered.some((e) => e.time.nsec % 1_000_000 !== 0),
          'sub-millisecond time kept',
        );
      assert.doesNotMatch(fb.output(), /\[error\]/);
    });
  }
});
