/**
 * `npm run bench`: each scenario runs the system under test (SUT) as its own process, the
 * load generator in a second and the sink in a third, so the SUT's CPU and memory are its
 * own (read from /proc). With `--anchor`, Fluent Bit and/or Fluentd then run the same load
 * in the SUT's place, one after another (bench/anchors.ts).
 *
 *   load generator ──forward/HTTP──► SUT (estuary, --sut "cmd", or an anchor) ──► sink or file
 *   (bench/load/*)                   sampled: CPU, RSS, heap                      (counts, latency)
 *
 * Scenarios: bench/scenarios.ts; one run: bench/harness.ts; tables: bench/report.ts.
 * Results: bench/results/<date>-scenario<N>[-<rate>][-<anchor>].json and Markdown on stdout.
 * Flags: --scenario N (repeatable; all by default), --duration 30s, --rate N (open loop),
 * --quick (10 s each), --json, --buffer memory|redis (override), --workers N (service.workers;
 * CPU and RSS then cover the supervisor and every worker), --connections N, --records N,
 * --anchor fluent-bit|fluentd (repeatable or a comma list), --sut "<command>" with
 * {forward_port} {http_port} {sink_host} {sink_port} {output_dir} {config} placeholders.
 * --soak: one long open-loop run of scenario 6's shape (10 min at 20,000 records/s unless
 * --duration/--rate say otherwise) with a memory series and a drift verdict (bench/soak.ts),
 * written to bench/results/<date>-soak[-redis].json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.ts';
import { ANCHOR_NAMES, type Anchor, type AnchorName, findAnchor } from './anchors.ts';
import {
  type BenchResult,
  estuaryNodeFlags,
  machine,
  type RunOptions,
  runOne,
  type Server,
} from './harness.ts';
import { anchorTable, resultsTable, type Skipped } from './report.ts';
import { type BufferKind, SCENARIOS } from './scenarios.ts';
import { SOAK_DEFAULTS, soakTable, summarize } from './soak.ts';

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
    connections: { type: 'string' },
    records: { type: 'string' },
    anchor: { type: 'string', multiple: true },
    soak: { type: 'boolean', default: false },
  },
});

function count(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${flag}: expected a whole number ≥ ${min}, got ${text}`);
  return n;
}

const workers = count('workers', values.workers, 1) ?? 1;
const connections = count('connections', values.connections, 1);
const records = count('records', values.records, 0);
if (values.buffer !== undefined && values.buffer !== 'memory' && values.buffer !== 'redis')
  throw new Error(`--buffer: memory or redis, got ${values.buffer}`);
if (values.soak)
  for (const flag of ['scenario', 'anchor', 'records', 'quick'] as const)
    if (values[flag] !== undefined && values[flag] !== false)
      throw new Error(
        `--soak: runs scenario 6's shape on Estuary (or --sut) alone; --${flag} does not apply`,
      );
const durationMs = values.soak
  ? (parseDuration(values.duration ?? '') ?? SOAK_DEFAULTS.durationMs)
  : (parseDuration(values.duration ?? (values.quick ? '10s' : '30s')) ?? 30_000);
const chosen = values.scenario?.map(Number) ?? SCENARIOS.map((s) => s.id);
const unknown = chosen.filter((id) => !SCENARIOS.some((s) => s.id === id));
if (unknown.length > 0) throw new Error(`--scenario: no scenario ${unknown.join(', ')}`);
const anchorNames = (values.anchor ?? []).flatMap((a) => a.split(',')).map((a) => a.trim());
for (const name of anchorNames)
  if (!(ANCHOR_NAMES as readonly string[]).includes(name))
    throw new Error(`--anchor: ${name} is not one of ${ANCHOR_NAMES.join(', ')}`);
const log = (line: string) => process.stderr.write(`${line}\n`);

const anchors = [...new Set(anchorNames as AnchorName[])].map((name) => {
  const found = findAnchor(name);
  if ('missing' in found) log(`anchor ${name}: not run: ${found.missing}`);
  return { name, found };
});
const sut: Server = values.sut ? { kind: 'command', command: values.sut } : { kind: 'estuary' };

mkdirSync('bench/results', { recursive: true });
const day = new Date().toISOString().slice(0, 10);
if (values.soak) await soak();
else await scenarios();

async function scenarios(): Promise<void> {
  const results: BenchResult[] = [];
  const skipped: Skipped[] = [];
  for (const scenario of SCENARIOS.filter((s) => chosen.includes(s.id))) {
    const buffer = (values.buffer as BufferKind | undefined) ?? scenario.buffer;
    const rates = values.rate ? [Number(values.rate)] : (scenario.rates ?? [0]);
    for (const rate of rates) {
      const options: RunOptions = { buffer, rate, durationMs, workers, connections, records };
      const at = rate ? ` @ ${rate} rec/s` : '';
      log(`scenario ${scenario.id}${at}: ${scenario.name} (${buffer})`);
      results.push(await runOne(scenario, sut, options));
      if (anchors.length === 0) continue;
      const base = { scenario: scenario.id, name: scenario.name, rate: rate || null };
      if (typeof scenario.anchor !== 'string') {
        skipped.push({ ...base, server: undefined, reason: scenario.anchor.none });
        continue;
      }
      for (const { name, found } of anchors) {
        if ('missing' in found) {
          skipped.push({ ...base, server: name, reason: found.missing });
          continue;
        }
        const lacks = found.lacks[scenario.anchor];
        if (lacks !== undefined) {
          skipped.push({ ...base, server: name, reason: lacks });
          continue;
        }
        log(`scenario ${scenario.id}${at}: ${name} (${found.version})`);
        try {
          results.push(await runOne(scenario, { kind: 'anchor', anchor: found satisfies Anchor }, options));
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          log(`scenario ${scenario.id}: ${name} failed: ${reason}`);
          skipped.push({ ...base, server: name, reason: `failed: ${reason}` });
        }
      }
    }
  }

  for (const r of results) {
    const suffix = `${r.rate ? `-${r.rate}` : ''}${r.server_version === null ? '' : `-${r.server}`}`;
    writeFileSync(
      `bench/results/${day}-scenario${r.scenario}${suffix}.json`,
      `${JSON.stringify(r, null, 2)}\n`,
    );
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  else {
    process.stdout.write(resultsTable(results, machine));
    if (anchors.length > 0) process.stdout.write(anchorTable(results, skipped));
  }
}

async function soak(): Promise<void> {
  const shape = SCENARIOS.find((s) => s.id === 6)!;
  const buffer = (values.buffer as BufferKind | undefined) ?? shape.buffer;
  const scenario = { ...shape, name: `PackedForward ×100, ack → ${buffer} → forward sink` };
  const rate = count('rate', values.rate, 1) ?? SOAK_DEFAULTS.rate;
  const seconds = Math.round(durationMs / 1000);
  log(
    `soak: ${scenario.name} @ ${rate} rec/s for ${seconds} s, a point every ${SOAK_DEFAULTS.intervalMs / 1000} s`,
  );
  const before = loadavg()[0]!;
  const { series = [], ...result } = await runOne(scenario, sut, {
    buffer,
    rate,
    durationMs,
    workers,
    connections,
    records: undefined,
    seriesIntervalMs: SOAK_DEFAULTS.intervalMs,
  });
  const context = { machine, loadavg: [round2(before), round2(loadavg()[0]!)] as [number, number] };
  const summary = summarize(series, result.duration_s);
  const file = `bench/results/${day}-soak${buffer === 'redis' ? '-redis' : ''}.json`;
  const record = {
    mode: 'soak',
    rate,
    buffer,
    duration_s: result.duration_s,
    interval_s: SOAK_DEFAULTS.intervalMs / 1000,
    node_flags: sut.kind === 'estuary' ? estuaryNodeFlags() : null,
    loadavg_start: context.loadavg[0],
    loadavg_end: context.loadavg[1],
    summary,
    series,
    result,
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(record, null, 2)}\n`);
  else process.stdout.write(`${soakTable(result, series, summary, context)}\nWritten to ${file}\n`);
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
