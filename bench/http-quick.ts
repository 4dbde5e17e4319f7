/**
 * A quick HTTP ingest load, until `npm run bench` exists: Estuary runs as its own process
 * (http input → null output, memory buffer); this process posts JSON arrays of ~250-byte
 * records on several keep-alive connections for a fixed time and reports acked records/s
 * and the server's peak RSS (VmHWM from /proc).
 *
 *   node bench/http-quick.ts [--seconds 10] [--connections 16] [--batch 100]
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, waitFor } from '../test/support/wait.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    batch: { type: 'string', default: '100' },
  },
});
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const batchSize = Number(values.batch);

const [httpPort, adminPort] = [await freePort(), await freePort()];
const config = join(tmpdir(), `estuary-bench-${process.pid}.yaml`);
writeFileSync(
  config,
  `service:
  log_level: warn
  http: { listen: 127.0.0.1, port: ${adminPort} }
inputs:
  - { type: http, listen: 127.0.0.1, port: ${httpPort} }
outputs:
  - { type: "null", id: sink }
`,
);
const server = spawn(process.execPath, ['src/cli.ts', 'run', '-c', config], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
await waitFor(async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, { timeoutMs: 10_000 });

// The shape of the seeds' Go app JSON logs, ~250 bytes each.
const record = (i: number) => ({
  level: 'info',
  ts: new Date().toISOString(),
  caller: 'server/handler.go:142',
  msg: 'request completed',
  method: 'GET',
  path: `/api/v1/items/${i}`,
  status: 200,
  duration_ms: 12.5,
  bytes: 5120,
  request_id: `b1946ac9-2492-4d1c-${String(i).padStart(12, '0')}`,
});
const body = JSON.stringify(Array.from({ length: batchSize }, (_, i) => record(i)));
const url = `http://127.0.0.1:${httpPort}/app.go`;

let acked = 0;
let failed = 0;
const deadline = Date.now() + seconds * 1000;
const cpuBefore = readCpuSeconds(server.pid!);
const started = performance.now();
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (Date.now() < deadline) {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await res.arrayBuffer();
      if (res.ok) acked += batchSize;
      else failed += 1;
    }
  }),
);
const elapsed = (performance.now() - started) / 1000;
const cpu = readCpuSeconds(server.pid!) - cpuBefore;
const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
server.kill('SIGTERM');

console.log(
  JSON.stringify(
    {
      records_per_sec: Math.round(acked / elapsed),
      records_acked: acked,
      failed_requests: failed,
      server_cpu_seconds_per_million: Number(((cpu / acked) * 1e6).toFixed(2)),
      server_rss_peak_mb: Math.round(kb('VmHWM') / 1024),
      server_rss_end_mb: Math.round(kb('VmRSS') / 1024),
      record_bytes: Math.round(body.length / batchSize),
      connections,
      batch: batchSize,
      seconds: elapsed,
    },
    null,
    2,
  ),
);

function readCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 Hz).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
