/**
 * One benchmark run: the sink (or the output directory), Redis when the buffer is redis, the
 * server under test, then the load; CPU and memory sampled from the server's process tree
 * (and Redis's, which is part of the cost of a redis buffer) until what it acked has arrived.
 *
 *   load generator ──forward/HTTP──► server under test ──forward/HTTP──► sink process
 *   (bench/load/*)                   estuary | --sut | an anchor      └─file──► output dir,
 *                                    sampled: CPU, RSS (+ heap,             lines counted
 *                                    external from Estuary's /metrics)
 */
import { type ChildProcess, fork, type StdioOptions, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { info, RedisServer } from '../test/support/redis.ts';
import { selfSignedCert } from '../test/support/tls.ts';
import { freePort, waitFor } from '../test/support/wait.ts';
import type { Anchor } from './anchors.ts';
import { randomLoopback } from './certificate.ts';
import { FileLineCounter } from './file-lines.ts';
import type { LoadResult } from './load/forward.ts';
import { MemoryMetricsSampler } from './memory-metrics.ts';
import { ProcSampler, treeCpuSeconds } from './proc.ts';
import { type BufferKind, estuaryConfig, type Ports, type Scenario, SINKS } from './scenarios.ts';
import type { SinkStats } from './sinks/stats.ts';
import { buildSeries, type SeriesPoint } from './soak.ts';

/** Who runs in the SUT's place. */
export type Server =
  | { kind: 'estuary' }
  /** --sut: any forward/HTTP server; placeholders replaced. */
  | { kind: 'command'; command: string }
  | { kind: 'anchor'; anchor: Anchor };

export interface RunOptions {
  buffer: BufferKind;
  /** Records/s, open loop; 0 for closed loop. */
  rate: number;
  durationMs: number;
  workers: number;
  /** Overrides of the scenario's. */
  connections: number | undefined;
  records: number | undefined;
  /**
   * Soak: scrape /metrics this often (and once before the load and once after the drain)
   * and return the memory series in `series`.
   */
  seriesIntervalMs?: number;
}

export interface BenchResult {
  scenario: number;
  name: string;
  /** `estuary`, the --sut command, or the anchor's name. */
  server: string;
  server_version: string | null;
  /** service.workers of the SUT (estuary only). */
  workers: number;
  buffer: BufferKind;
  /** Set when the server does not run the scenario's buffer (an anchor in a redis scenario). */
  buffer_note: string | null;
  rate: number | null;
  connections: number | null;
  duration_s: number;
  /** Seconds from the end of the load until the sink had every acked record; null: it never did (30 s). */
  drain_s: number | null;
  records_sent: number;
  records_acked: number;
  /** Given up at the end of the load (never acked). */
  records_failed: number;
  /** Sent again after their connection failed (counted once in sent). */
  records_retried: number;
  records_received: number;
  /** What the per-CPU figures divide by: received, but never more than acked. */
  records_delivered: number;
  /** Acked per second of load. */
  records_per_sec: number;
  /** Delivered per second of load + drain: what reached the sink, end to end. */
  delivered_per_sec: number;
  /** SUT CPU over the load and the drain. */
  cpu_seconds: number;
  cpu_seconds_per_million: number;
  /** redis-server's CPU over the same time, for the redis buffer (null otherwise). */
  redis_cpu_seconds: number | null;
  /** SUT + redis-server. */
  cpu_seconds_per_million_total: number;
  records_per_cpu_second: number | null;
  /** SUT CPU seconds per wall second during the load. */
  vcpu: number;
  rss_peak_mb: number;
  rss_steady_mb: number;
  /** From Estuary's /metrics (null for other servers). */
  heap_used_peak_mb: number | null;
  heap_used_steady_mb: number | null;
  external_peak_mb: number | null;
  external_steady_mb: number | null;
  metrics_rss_peak_mb: number | null;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
  redis_used_memory_mb: number | null;
  redis_rss_peak_mb: number | null;
  machine: string;
  date: string;
  /** Soak runs only (bench/soak.ts). */
  series?: SeriesPoint[];
}

export const machine = `${cpus().length}× ${cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;

const DRAIN_TIMEOUT_MS = 30_000;
const log = (line: string) => process.stderr.write(`${line}\n`);
const MB = 2 ** 20;

interface Receiver {
  stats(): Promise<SinkStats>;
}

export async function runOne(scenario: Scenario, server: Server, options: RunOptions): Promise<BenchResult> {
  const anchor = server.kind === 'anchor' ? server.anchor : undefined;
  // The anchors have no redis buffer: they run on memory (and are reported so).
  const buffer = anchor ? 'memory' : options.buffer;
  const dir = mkdtempSync(join(tmpdir(), 'estuary-bench-'));
  const outputDir = join(dir, 'out');
  mkdirSync(outputDir);
  const sinkSpec = SINKS[scenario.sink];
  const ports: Ports = {
    forward: await freePort(),
    http: await freePort(),
    // A sink on 443 has a loopback address of its own, so it meets no other server's 443.
    sinkHost: sinkSpec.tls?.port === undefined ? '127.0.0.1' : randomLoopback(),
    sink: sinkSpec.tls?.port ?? (await freePort()),
    admin: await freePort(),
  };
  const children: ChildProcess[] = [];
  const groups: number[] = [];
  let redis: RedisServer | undefined;
  try {
    // HTTPS sinks: a certificate of the run for the sink's address, which every server trusts.
    // Self-signed for the sink's own loopback address: Node checks it, Fluent Bit the chain.
    const tls = sinkSpec.tls && selfSignedCert(dir, ports.sinkHost);
    let receiver: Receiver;
    if (scenario.sink === 'file') {
      const lines = new FileLineCounter(outputDir);
      receiver = {
        stats: async () => ({ received: lines.count(), latency_p50_ms: null, latency_p99_ms: null }),
      };
    } else {
      const address = ['--port', String(ports.sink), '--host', ports.sinkHost];
      const https = tls ? ['--cert', tls.cert, '--key', tls.key] : [];
      const sink = fork(`bench/sinks/${scenario.sink}-sink.ts`, [...address, ...https], {
        stdio: 'inherit',
      });
      children.push(sink);
      await new Promise((resolve, reject) => {
        sink.once('message', resolve);
        sink.once('exit', (code) =>
          reject(new Error(`the ${scenario.sink} sink exited (${code}) before listening`)),
        );
      });
      receiver = { stats: () => sinkStats(sink) };
    }

    // Durable as we document it for production: AOF, fsync every second.
    if (buffer === 'redis') redis = await RedisServer.start(['--appendfsync', 'everysec']);

    const sut = startServer(server, {
      scenario,
      buffer,
      ports,
      dir,
      outputDir,
      redis,
      workers: options.workers,
      caFile: tls?.cert,
    });
    groups.push(sut.process.pid!);
    await waitForPort(scenario.load.kind === 'forward' ? ports.forward : ports.http, sut);
    await settle(sut.process.pid!);

    const sampler = new ProcSampler(sut.process.pid!);
    const redisSampler = redis && new ProcSampler(Number(await info(redis, 'server', 'process_id')));
    // A scrape costs Estuary ~5 ms of CPU: nothing next to a closed loop's, but a tenth of
    // what 10,000 records/s cost, so open-loop runs scrape seldom, and a soak more seldom still.
    const series = options.seriesIntervalMs;
    const memory = anchor
      ? undefined
      : new MemoryMetricsSampler(
          `http://127.0.0.1:${ports.admin}/metrics`,
          series ?? (options.rate > 0 ? 5000 : 500),
          { immediate: series !== undefined },
        );
    const connections =
      scenario.load.kind === 'http' ? null : (options.connections ?? scenario.load.connections ?? 4);
    const records = options.records ?? scenario.records ?? 0;
    const load = fork(
      `bench/load/${scenario.load.kind}.ts`,
      loadArgs(scenario, ports, options, connections, records),
      { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
    );
    const loadStart = performance.now();
    children.push(load);
    const sent = await new Promise<LoadResult>((resolve) =>
      load.once('message', (m) => resolve(m as LoadResult)),
    );
    const loadEnd = performance.now();
    // Steady figures are the load's; peaks also cover the drain, when the last chunks are written.
    const loadPhase = sampler.summary();
    const loadMemory = memory?.figures() ?? null;
    const usedMemory = redis && (await info(redis, 'memory', 'used_memory'));
    const redisMemory = usedMemory ? Number(usedMemory) : null;

    // Drain: what was acked must reach the sink (bounded wait; what is missing is reported).
    // CPU is counted through it: a server that acks first and writes later pays here.
    let stats = await receiver.stats();
    let drainedAt: number | undefined;
    await waitFor(
      async () => {
        stats = await receiver.stats();
        if (stats.received < sent.acked) return false;
        drainedAt = performance.now();
        return true;
      },
      { timeoutMs: DRAIN_TIMEOUT_MS, intervalMs: 200 },
    ).catch(() => undefined);
    if (anchor && (drainedAt === undefined || sent.failed > 0)) {
      const lines = sut.outputTail(8);
      if (lines)
        log(`${anchor.name}: sends failed or acked records were missing at the end; its log ends:\n${lines}`);
    }
    const drainEnd = performance.now();
    // What is left once the buffer is empty again, against the idle point before the load.
    if (series !== undefined) await memory?.scrapeNow();
    const proc = sampler.stop();
    const redisProc = redisSampler?.stop();
    const mem = await memory?.stop();

    const delivered = Math.min(stats.received, sent.acked);
    const drainSeconds = drainedAt === undefined ? null : (drainedAt - loadEnd) / 1000;
    const totalCpu = proc.cpuSeconds + (redisProc?.cpuSeconds ?? 0);
    const perMillion = (cpu: number) => round((cpu / Math.max(1, delivered)) * 1e6, 2);
    const mb = (bytes: number | undefined) => (bytes === undefined ? null : round(bytes / MB, 1));
    return {
      scenario: scenario.id,
      name: scenario.name,
      server:
        server.kind === 'estuary'
          ? 'estuary'
          : server.kind === 'command'
            ? server.command
            : server.anchor.name,
      server_version: anchor?.version ?? null,
      workers: server.kind === 'estuary' ? options.workers : 1,
      buffer,
      buffer_note:
        anchor && options.buffer !== 'memory'
          ? `${anchor.name} on its default memory buffer (no ${options.buffer})`
          : null,
      rate: options.rate || null,
      connections,
      duration_s: round(sent.seconds, 2),
      drain_s: drainSeconds === null ? null : round(drainSeconds, 2),
      records_sent: sent.sent,
      records_acked: sent.acked,
      records_failed: sent.failed,
      records_retried: sent.retried ?? 0,
      records_received: stats.received,
      records_delivered: delivered,
      records_per_sec: Math.round(sent.acked / sent.seconds),
      delivered_per_sec: Math.round(delivered / (sent.seconds + (drainSeconds ?? DRAIN_TIMEOUT_MS / 1000))),
      cpu_seconds: round(proc.cpuSeconds, 2),
      cpu_seconds_per_million: perMillion(proc.cpuSeconds),
      redis_cpu_seconds: redisProc ? round(redisProc.cpuSeconds, 2) : null,
      cpu_seconds_per_million_total: perMillion(totalCpu),
      records_per_cpu_second: totalCpu > 0 ? Math.round(delivered / totalCpu) : null,
      vcpu: round(loadPhase.cpuSeconds / loadPhase.seconds, 3),
      rss_peak_mb: round(proc.rssPeakBytes / MB, 1),
      rss_steady_mb: round(loadPhase.rssSteadyBytes / MB, 1),
      heap_used_peak_mb: mb(mem?.heap.peakBytes),
      heap_used_steady_mb: mb(loadMemory?.heap.steadyBytes),
      external_peak_mb: mb(mem?.external.peakBytes),
      external_steady_mb: mb(loadMemory?.external.steadyBytes),
      metrics_rss_peak_mb: mb(mem?.rss.peakBytes),
      latency_p50_ms: stats.latency_p50_ms,
      latency_p99_ms: stats.latency_p99_ms,
      redis_used_memory_mb: redisMemory === null ? null : round(redisMemory / MB, 1),
      redis_rss_peak_mb: redisProc ? round(redisProc.rssPeakBytes / MB, 1) : null,
      machine,
      date: new Date().toISOString(),
      ...(series === undefined
        ? {}
        : {
            series: buildSeries({
              proc: sampler.samples,
              redis: redisSampler?.samples,
              memory: memory?.points ?? [],
              loadStart,
              loadEnd,
              drainEnd,
              intervalMs: series,
            }),
          }),
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
    // The output files may be hundreds of MB.
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Started {
  process: ChildProcess;
  /** The end of its output, for a server that dies before it listens, or after a run. */
  outputTail(lines: number): string;
}

function startServer(
  server: Server,
  context: {
    scenario: Scenario;
    buffer: BufferKind;
    ports: Ports;
    dir: string;
    outputDir: string;
    redis: RedisServer | undefined;
    workers: number;
    caFile: string | undefined;
  },
): Started {
  const { scenario, buffer, ports, dir, outputDir, redis, workers, caFile } = context;
  const config = join(dir, 'estuary.yaml');
  writeFileSync(config, estuaryConfig({ scenario, buffer, ports, redisUrl: redis?.url, outputDir, workers }));
  let argv: string[];
  if (server.kind === 'anchor') {
    const shape = scenario.anchor;
    if (typeof shape !== 'string') throw new Error(`scenario ${scenario.id}: ${shape.none}`);
    const files = server.anchor.config(shape, scenario, { ports, dir, outputDir, caFile });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    argv = server.anchor.command(join(dir, server.anchor.configName));
  } else if (server.kind === 'command') {
    const command = server.command
      .replaceAll('{forward_port}', String(ports.forward))
      .replaceAll('{http_port}', String(ports.http))
      .replaceAll('{sink_host}', ports.sinkHost)
      .replaceAll('{sink_port}', String(ports.sink))
      .replaceAll('{output_dir}', outputDir)
      .replaceAll('{config}', config);
    argv = ['sh', '-c', `exec ${command}`];
  } else argv = [process.execPath, ...estuaryNodeFlags(), 'bin/estuary.js', 'run', '-c', config];
  // An anchor's log (Fluentd's on stdout, with a stack trace per buffer overflow) goes to a
  // file, summed up after the run; Estuary's warnings go to our stderr as they come.
  const log = server.kind === 'anchor' ? openSync(join(dir, 'server.log'), 'w') : undefined;
  const stdio: StdioOptions = log === undefined ? ['ignore', 'ignore', 'pipe'] : ['ignore', log, log];
  // Its own process group, so the SUT's workers (or an anchor's children) go with it.
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio,
    detached: true,
    env: {
      ...process.env,
      ...SINKS[scenario.sink].env,
      ...(caFile === undefined ? {} : { NODE_EXTRA_CA_CERTS: caFile }),
    },
  });
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    process.stderr.write(d);
    tail = (tail + d.toString()).slice(-4000);
  });
  if (log !== undefined) closeSync(log);
  const outputTail = (lines: number) => {
    const text = log === undefined ? tail : readFileSync(join(dir, 'server.log'), 'utf8');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  };
  return { process: child, outputTail };
}

function loadArgs(
  scenario: Scenario,
  ports: Ports,
  options: RunOptions,
  connections: number | null,
  records: number,
): string[] {
  const { load } = scenario;
  const port = String(load.kind === 'forward' ? ports.forward : ports.http);
  const args = ['--port', port, '--batch', String(load.batch)];
  args.push('--rate', String(options.rate), '--duration', `${options.durationMs}ms`);
  if (load.kind === 'http') return args;
  args.push('--connections', String(connections), '--records', String(records));
  if (load.kind === 'otlp') return args;
  return [...args, '--mode', load.mode, '--payload', load.payload ?? 'record'];
}

function sinkStats(sink: ChildProcess): Promise<SinkStats> {
  return new Promise((resolve) => {
    sink.once('message', (m) => resolve(m as SinkStats));
    sink.send('stats');
  });
}

async function waitForPort(port: number, sut: Started): Promise<void> {
  const exited = () => sut.process.exitCode !== null || sut.process.signalCode !== null;
  await waitFor(
    () =>
      exited() ||
      new Promise<boolean>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { timeoutMs: 30_000, intervalMs: 50, what: `port ${port}` },
  );
  if (exited()) {
    const code = sut.process.exitCode ?? sut.process.signalCode;
    throw new Error(`exited (${code}) before listening: ${sut.outputTail(10) || 'no output'}`);
  }
}

/**
 * Until the server has finished starting (its CPU idle for 250 ms): a server that opens its
 * port before it has loaded everything (Fluentd's plugins) would otherwise bill its start-up
 * to the load.
 */
async function settle(pid: number): Promise<void> {
  let last = Number.NEGATIVE_INFINITY;
  await waitFor(
    () => {
      const now = treeCpuSeconds(pid);
      const idle = now - last < 0.02;
      last = now;
      return idle;
    },
    { timeoutMs: 10_000, intervalMs: 250 },
  ).catch(() => undefined);
}

function round(n: number, digits: number): number {
  return Number(n.toFixed(digits));
}

/** The Node flags Estuary is started with (`npm start`'s), so the bench runs what users run. */
export function estuaryNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf('bin/estuary.js'));
}
