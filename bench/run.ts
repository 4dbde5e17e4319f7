/**
 * `npm run bench`: each scenario runs the system under test (SUT) as its own process, the
 * load generator in a second and the sink in a third, so the SUT's CPU and memory are its
 * own (read from /proc).
 *
 *   load generator ──forward/HTTP──► SUT (estuary, or --sut "cmd") ──forward──► sink
 *   (bench/load/*)                   sampled: CPU, RSS               (bench/sinks/*: counts,
 *                                                                     latency from EventTime)
 *
 * Results: bench/results/<date>-<scenario>.json and a Markdown table on stdout.
 * Flags: --scenario N (repeatable; all by default), --duration 30s, --rate N (open loop),
 * --quick (10 s each), --json, --buffer memory|redis (override), --workers N (service.workers;
 * CPU and RSS then cover the supervisor and every worker), --sut "<command>" with
 * {forward_port} {http_port} {sink_port} placeholders.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.ts';
import { info, RedisServer } from '../test/support/redis.ts';
import { freePort, waitFor } from '../test/support/wait.ts';
import type { LoadResult } from './load/forward.ts';
import { ProcSampler } from './proc.ts';
import type { SinkStats } from './sinks/stats.ts';

type Buffer = 'memory' | 'redis';
interface Scenario {
  id: number;
  name: string;
  load: { kind: 'forward'; mode: 'packed' | 'message'; batch: number } | { kind: 'http'; batch: number };
  buffer: Buffer;
  sink: 'forward' | 'elasticsearch' | 'loki';
  /** Open-loop rates to step through (records/s); closed loop when absent. */
  rates?: number[];
}

const SCENARIOS: Scenario[] = [
  {
    id: 1,
    name: 'forward PackedForward ×1000, ack → memory → forward sink',
    load: { kind: 'forward', mode: 'packed', batch: 1000 },
    buffer: 'memory',
    sink: 'forward',
  },
  {
    id: 2,
    name: 'forward PackedForward ×1000, ack → redis → forward sink',
    load: { kind: 'forward', mode: 'packed', batch: 1000 },
    buffer: 'redis',
    sink: 'forward',
  },
  {
    id: 3,
    name: 'forward PackedForward ×1000, ack → redis → Elasticsearch fake (_bulk)',
    load: { kind: 'forward', mode: 'packed', batch: 1000 },
    buffer: 'redis',
    sink: 'elasticsearch',
  },
  {
    id: 7,
    name: 'forward PackedForward ×1000, ack → redis → Loki fake (protobuf + snappy)',
    load: { kind: 'forward', mode: 'packed', batch: 1000 },
    buffer: 'redis',
    sink: 'loki',
  },
  {
    id: 4,
    name: 'forward Message mode, 1 record/message, ack → memory → forward sink',
    load: { kind: 'forward', mode: 'message', batch: 1 },
    buffer: 'memory',
    sink: 'forward',
  },
  {
    id: 5,
    name: 'HTTP JSON arrays ×100 → redis → forward sink',
    load: { kind: 'http', batch: 100 },
    buffer: 'redis',
    sink: 'forward',
  },
  {
    id: 6,
    name: 'fixed rates, PackedForward → memory → forward sink',
    load: { kind: 'forward', mode: 'packed', batch: 100 },
    buffer: 'memory',
    sink: 'forward',
    rates: [100, 1000, 10_000],
  },
];

/** The SUT's output for each sink. */
const SINK_OUTPUTS: Record<Scenario['sink'], (port: number) => string> = {
  forward: (port) => `{ type: forward, id: sink, servers: [{ host: 127.0.0.1, port: ${port} }] }`,
  elasticsearch: (port) =>
    `{ type: elasticsearch, id: sink, hosts: ["http://127.0.0.1:${port}"], logstash_format: true, logstash_prefix: bench }`,
  loki: (port) =>
    `{ type: loki, id: sink, url: "http://127.0.0.1:${port}/loki/api/v1/push", labels: { job: bench }, include_tag: true }`,
};

export interface BenchResult {
  scenario: number;
  name: string;
  sut: string;
  /** service.workers of the SUT (estuary only). */
  workers: number;
  buffer: Buffer;
  rate: number | null;
  duration_s: number;
  records_sent: number;
  records_acked: number;
  records_received: number;
  records_per_sec: number;
  cpu_seconds_per_million: number;
  vcpu: number;
  rss_peak_mb: number;
  rss_steady_mb: number;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  redis_used_memory_mb: number | null;
  machine: string;
  date: string;
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', multiple: true },
    duration: { type: 'string' },
    rate: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    buffer: { type: 'string' },
    sut: { type: 'string' },
    workers: { type: 'string' },
  },
});
const workers = Number(values.workers ?? 1);
if (!Number.isInteger(workers) || workers < 1)
  throw new Error(`--workers: expected a count, got ${values.workers}`);
const durationMs = parseDuration(values.duration ?? (values.quick ? '10s' : '30s')) ?? 30_000;
const chosen = values.scenario?.map(Number) ?? SCENARIOS.map((s) => s.id);
const machine = `${cpus().length}× ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const log = (line: string) => process.stderr.write(`${line}\n`);

const results: BenchResult[] = [];
for (const scenario of SCENARIOS.filter((s) => chosen.includes(s.id))) {
  const buffer = (values.buffer as Buffer | undefined) ?? scenario.buffer;
  const rates = values.rate ? [Number(values.rate)] : (scenario.rates ?? [0]);
  for (const rate of rates) {
    log(`scenario ${scenario.id}${rate ? ` @ ${rate} rec/s` : ''}: ${scenario.name} (${buffer})`);
    results.push(await runOne(scenario, buffer, rate));
  }
}

mkdirSync('bench/results', { recursive: true });
const day = new Date().toISOString().slice(0, 10);
for (const r of results)
  writeFileSync(
    `bench/results/${day}-scenario${r.scenario}${r.rate ? `-${r.rate}` : ''}.json`,
    `${JSON.stringify(r, null, 2)}\n`,
  );
if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
else process.stdout.write(table(results));

async function runOne(scenario: Scenario, buffer: Buffer, rate: number): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-bench-'));
  const ports = {
    forward: await freePort(),
    http: await freePort(),
    sink: await freePort(),
    admin: await freePort(),
  };
  const children: ChildProcess[] = [];
  const groups: number[] = [];
  let redis: RedisServer | undefined;
  try {
    const sink = fork(`bench/sinks/${scenario.sink}-sink.ts`, ['--port', String(ports.sink)], {
      stdio: 'inherit',
    });
    children.push(sink);
    await new Promise((resolve) => sink.once('message', resolve));

    // Durable as we document it for production: AOF, fsync every second.
    if (buffer === 'redis') redis = await RedisServer.start(['--appendfsync', 'everysec']);
    const redisUrl = redis?.url;

    const config = join(dir, 'estuary.yaml');
    const sutCommand = values.sut
      ? values.sut
          .replaceAll('{forward_port}', String(ports.forward))
          .replaceAll('{http_port}', String(ports.http))
          .replaceAll('{sink_port}', String(ports.sink))
          .replaceAll('{config}', config)
      : undefined;
    writeFileSync(config, sutConfig(scenario, buffer, ports, redisUrl));
    // Its own process group, so the SUT's workers go with it.
    const sut = sutCommand
      ? spawn('sh', ['-c', `exec ${sutCommand}`], { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
      : spawn(process.execPath, ['bin/estuary.js', 'run', '-c', config], {
          stdio: ['ignore', 'ignore', 'inherit'],
          detached: true,
        });
    groups.push(sut.pid!);
    await waitForPort(scenario.load.kind === 'http' ? ports.http : ports.forward);

    const sampler = new ProcSampler(sut.pid!);
    const loadArgs =
      scenario.load.kind === 'forward'
        ? [
            '--port',
            String(ports.forward),
            '--mode',
            scenario.load.mode,
            '--batch',
            String(scenario.load.batch),
            '--rate',
            String(rate),
            '--duration',
            `${durationMs}ms`,
          ]
        : [
            '--port',
            String(ports.http),
            '--batch',
            String(scenario.load.batch),
            '--rate',
            String(rate),
            '--duration',
            `${durationMs}ms`,
          ];
    const load = fork(
      scenario.load.kind === 'forward' ? 'bench/load/forward.ts' : 'bench/load/http.ts',
      loadArgs,
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
    );
    children.push(load);
    const sent = await new Promise<LoadResult>((resolve) =>
      load.once('message', (m) => resolve(m as LoadResult)),
    );
    const proc = sampler.stop();
    const usedMemory = redis && (await info(redis, 'memory', 'used_memory'));
    const redisMemory = usedMemory ? Number(usedMemory) : null;

    // Drain: what was acked must reach the sink (bounded wait; what is missing is reported).
    let stats = await sinkStats(sink);
    await waitFor(
      async () => {
        stats = await sinkStats(sink);
        return stats.received >= sent.acked;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    ).catch(() => undefined);
    return {
      scenario: scenario.id,
      name: scenario.name,
      sut: values.sut ?? 'estuary',
      workers,
      buffer,
      rate: rate || null,
      duration_s: round(sent.seconds, 2),
      records_sent: sent.sent,
      records_acked: sent.acked,
      records_received: stats.received,
      records_per_sec: Math.round(sent.acked / sent.seconds),
      cpu_seconds_per_million: round((proc.cpuSeconds / Math.max(1, sent.acked)) * 1e6, 2),
      vcpu: round(proc.cpuSeconds / proc.seconds, 3),
      rss_peak_mb: round(proc.rssPeakBytes / 2 ** 20, 1),
      rss_steady_mb: round(proc.rssSteadyBytes / 2 ** 20, 1),
      latency_p50_ms: stats.latency_p50_ms,
      latency_p99_ms: stats.latency_p99_ms,
      redis_used_memory_mb: redisMemory === null ? null : round(redisMemory / 2 ** 20, 1),
      machine,
      date: new Date().toISOString(),
    };
  } finally {
    for (const c of children.reverse()) c.kill('SIGKILL');
    for (const pgid of groups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await redis?.stop();
  }
}

function sutConfig(
  scenario: Scenario,
  buffer: Buffer,
  ports: Record<string, number>,
  redisUrl: string | undefined,
): string {
  const input =
    scenario.load.kind === 'forward'
      ? `{ type: forward, listen: 127.0.0.1, port: ${ports.forward} }`
      : `{ type: http, listen: 127.0.0.1, port: ${ports.http} }`;
  return `service:
  log_level: warn
  workers: ${workers}
  http: { listen: 127.0.0.1, port: ${ports.admin} }
  buffer: { type: ${buffer}${redisUrl ? `, redis_url: "${redisUrl}"` : ''}, flush_interval: 1s }
inputs:
  - ${input}
outputs:
  - ${SINK_OUTPUTS[scenario.sink](ports.sink!)}
`;
}

function sinkStats(sink: ChildProcess): Promise<SinkStats> {
  return new Promise((resolve) => {
    sink.once('message', (m) => resolve(m as SinkStats));
    sink.send('stats');
  });
}

function waitForPort(port: number): Promise<unknown> {
  return waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { timeoutMs: 15_000, intervalMs: 50, what: `port ${port}` },
  );
}

function round(n: number, digits: number): number {
  return Number(n.toFixed(digits));
}

function table(rows: BenchResult[]): string {
  const head =
    '| # | scenario | buffer | rate | records/s | CPU-s per 1M | vCPU | RSS peak MB | RSS steady MB | p50 ms | p99 ms | received/acked | Redis MB |';
  const sep = `|${'---|'.repeat(13)}`;
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.name} | ${r.buffer}${r.workers > 1 ? ` ×${r.workers} workers` : ''} | ${r.rate ?? 'max'} | ${r.records_per_sec} | ${r.cpu_seconds_per_million} | ${r.vcpu} | ${r.rss_peak_mb} | ${r.rss_steady_mb} | ${r.latency_p50_ms ?? '–'} | ${r.latency_p99_ms ?? '–'} | ${r.records_received}/${r.records_acked} | ${r.redis_used_memory_mb ?? '–'} |`,
  );
  return `\nMachine: ${machine}\n\n${[head, sep, ...lines].join('\n')}\n`;
}
