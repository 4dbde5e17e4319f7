/**
 * Redis memory per buffered record. An aggregator with the redis buffer takes `--records`
 * bench records (bench/records.ts, ~250 bytes of JSON each) over HTTP; its only output is
 * down (a file output into a missing directory, retry wait 1h), so every record stays in
 * Redis, sealed and queued. Reports Redis `INFO memory` used_memory growth per record next
 * to the record's msgpack size (fluentd_output_status_buffer_total_bytes / records).
 *
 *   node bench/redis-memory.ts [--records 200000] [--batch 500] [--chunk 8MiB]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sample } from '../test/support/prom-text.ts';
import { info, RedisServer } from '../test/support/redis.ts';
import { freePort, waitFor } from '../test/support/wait.ts';
import { recordAt } from './records.ts';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '500' },
    chunk: { type: 'string', default: '8MiB' },
  },
});
const total = Number(values.records);
const batch = Number(values.batch);

const dir = mkdtempSync(join(tmpdir(), 'estuary-redis-memory-'));
const redis = await RedisServer.start();
const [httpPort, adminPort] = [await freePort(), await freePort()];
const config = join(dir, 'estuary.yaml');
writeFileSync(
  config,
  `service:
  log_level: error
  http: { listen: 127.0.0.1, port: ${adminPort} }
  buffer: { type: redis, redis_url: "${redis.url}", chunk_limit_size: ${values.chunk}, total_limit_size: 8GiB }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${httpPort} }
outputs:
  - { type: file, id: down, path: ${dir}/missing/x.ndjson, mkdir: false, buffer: { retry: { wait: 1h } } }
`,
);
const server = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const metrics = async () => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
try {
  await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, { timeoutMs: 15_000 });
  const before = Number(await info(redis, 'memory', 'used_memory'));
  for (let sent = 0; sent < total; sent += batch) {
    const body = JSON.stringify(Array.from({ length: batch }, (_, i) => recordAt(sent + i)));
    const res = await fetch(`http://127.0.0.1:${httpPort}/bench.app`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  }
  // Everything sealed and queued (the open chunk seals after flush_interval, 1s).
  const labels = { plugin_id: 'down' };
  await waitFor(
    async () => sample(await metrics(), 'fluentd_output_status_buffer_stage_length', labels).value === 0,
    { timeoutMs: 10_000 },
  );
  const text = await metrics();
  const msgpackBytes = sample(text, 'fluentd_output_status_buffer_total_bytes', labels).value;
  const chunks = sample(text, 'fluentd_output_status_buffer_queue_length', labels).value;
  const grown = Number(await info(redis, 'memory', 'used_memory')) - before;
  console.log(
    JSON.stringify(
      {
        records: total,
        chunks,
        chunk_limit_size: values.chunk,
        msgpack_bytes_per_record: Number((msgpackBytes / total).toFixed(1)),
        redis_used_memory_delta: grown,
        redis_bytes_per_record: Number((grown / total).toFixed(1)),
        overhead_per_record: Number(((grown - msgpackBytes) / total).toFixed(1)),
        overhead_per_chunk: Math.round((grown - msgpackBytes) / Math.max(1, chunks)),
      },
      null,
      2,
    ),
  );
} finally {
  server.kill('SIGKILL');
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
