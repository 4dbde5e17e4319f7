import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startEstuary } from '../support/estuary.ts';
import { startFluentd } from '../support/fluent-bit.ts';
import { scriptedInstances } from '../support/outputs.ts';
import { parseSamples } from '../support/prom-text.ts';
import { selfSignedCert } from '../support/tls.ts';
import { waitFor } from '../support/wait.ts';
import { assertEachOnce, freePort, PAD, recordsFile, suite, waitForAgent } from './helpers.ts';

/**
 * Fluentd 1.15.3's `out_forward` (../shared/interop) into Estuary's forward input, as a
 * Fluentd aggregator tier in front of Estuary sends: `<security>` (shared_key), and
 * require_ack_response, over `transport tls` with gzip. Fluentd tails a file of records with
 * ids; each arrives once, and every chunk Fluentd wrote was acked (its own trace says so).
 */

const { dir, cleanup } = suite('fluentd-forward');
const COUNT = 200;
const KEY = 'interop-shared-key';

interface FluentdPlugin {
  plugin_id: string;
  emit_records?: number;
  write_count?: number;
  retry_count?: number;
  rollback_count?: number;
  buffer_total_queued_size?: number;
}

async function fluentdPlugin(port: number, id: string): Promise<FluentdPlugin | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/api/plugins.json`);
  return ((await res.json()) as { plugins: FluentdPlugin[] }).plugins.find((p) => p.plugin_id === id);
}

describe("Fluentd's out_forward into Estuary's forward input", () => {
  it('<security> shared_key and require_ack_response (over TLS, gzip): every record once, every chunk acked', async (t) => {
    const { cert, key } = selfSignedCert(dir);
    const port = await freePort();
    const e = await startEstuary(`
service:
  buffer: { flush_interval: 20ms }
inputs:
  - type: forward
    id: in
    listen: 127.0.0.1
    port: ${port}
    tls: { cert_file: ${cert}, key_file: ${key} }
    security: { self_hostname: estuary-interop, shared_key: ${KEY} }
outputs:
  - { type: scripted, id: fluentd-in, match: "**" }
`);
    cleanup(e.stop);
    const delivered = scriptedInstances.get('fluentd-in')!.delivered;
    const monitorPort = await freePort();
    const fluentd = startFluentd(
      t,
      dir,
      `<system>
  log_level info
</system>
<source>
  @type monitor_agent
  bind 127.0.0.1
  port ${monitorPort}
</source>
<source>
  @type tail
  path ${recordsFile(dir, 'fluentd', COUNT)}
  pos_file ${join(dir, 'fluentd.pos')}
  read_from_head true
  tag fluentd.tail
  <parse>
    @type json
  </parse>
</source>
<match fluentd.**>
  @type forward
  @id to_estuary
  # Its trace says "got a correct ack response" for each acked chunk.
  @log_level trace
  require_ack_response true
  compress gzip
  heartbeat_type none
  transport tls
  tls_cert_path ${cert}
  tls_verify_hostname true
  <security>
    self_hostname fluentd-interop
    shared_key ${KEY}
  </security>
  <server>
    host 127.0.0.1
    # The name its certificate is checked against (Fluentd 1.15.3 on Ruby 3.1 cannot check
    # an IP address: IPAddr::AddressFamilyError).
    name localhost
    port ${port}
  </server>
  <buffer>
    @type memory
    flush_mode interval
    flush_interval 0.2s
    flush_thread_interval 0.1
  </buffer>
</match>
`,
    );
    if (!fluentd) return;
    cleanup(fluentd.stop);
    const acks = () => fluentd.output().match(/got a correct ack response/g)?.length ?? 0;
    // Done when Fluentd took every record, holds none, and had each chunk it wrote acked.
    const out = await waitForAgent(
      async () => {
        const p = await fluentdPlugin(monitorPort, 'to_estuary');
        return p && p.emit_records === COUNT && p.buffer_total_queued_size === 0 && p.write_count === acks()
          ? p
          : undefined;
      },
      fluentd,
      `Fluentd to send ${COUNT} records, each chunk acked`,
    );
    assert.ok(out.write_count! >= 1);
    assert.deepEqual([out.retry_count, out.rollback_count], [0, 0], 'no retry, no rollback');
    await waitFor(() => delivered.length >= COUNT, { what: `${COUNT} records delivered` });
    assertEachOnce(
      delivered.map((x) => x.record.id),
      COUNT,
      'delivered',
    );
    for (const x of delivered) {
      assert.equal(x.tag, 'fluentd.tail');
      assert.deepEqual(x.record, { id: x.record.id, pad: PAD });
    }
    assert.ok(
      delivered.some((x) => x.time.nsec % 1000 !== 0),
      "Fluentd's EventTime kept to the nanosecond",
    );
    const metrics = parseSamples(await e.metrics()).filter((s) => s.labels.plugin_id === 'in');
    const wire = metrics.find((s) => s.name === 'estuary_input_bytes_total')?.value ?? 0;
    assert.ok(wire > 0 && wire < (COUNT * PAD.length) / 10, `gzip on the wire: ${wire} bytes`);
    assert.doesNotMatch(fluentd.output(), /\[(warn|error)\]: \[to_estuary\]/);
  });
});
