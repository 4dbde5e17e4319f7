/** The Markdown tables `npm run bench` prints. */
import type { BenchResult } from './harness.ts';

/** A scenario (at one rate) an anchor did not run, and why. */
export interface Skipped {
  scenario: number;
  name: string;
  rate: number | null;
  /** Undefined: the scenario has no anchor at all. */
  server: string | undefined;
  reason: string;
}

const dash = (v: number | null | undefined) => (v === null || v === undefined ? '–' : String(v));
const pair = (a: number | null, b: number | null) => (a === null ? '–' : `${a} / ${dash(b)}`);

function delivery(r: BenchResult): string {
  const extra = [
    r.records_failed > 0 ? `${r.records_failed} failed` : '',
    r.records_retried > 0 ? `${r.records_retried} retried` : '',
  ].filter((x) => x !== '');
  return `${r.records_received}/${r.records_acked}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}

function bufferCell(r: BenchResult): string {
  const note = r.buffer_note ? ' (its default; no redis)' : '';
  return `${r.buffer}${r.workers > 1 ? ` ×${r.workers} workers` : ''}${note}`;
}

export function resultsTable(rows: BenchResult[], machine: string): string {
  const head =
    '| # | scenario | server | buffer | rate | records/s | drain s | CPU-s per 1M | incl. redis | vCPU | RSS MB peak / steady | heap MB peak / steady | external MB peak / steady | p50 ms | p99 ms | received/acked | Redis MB |';
  const sep = `|${'---|'.repeat(17)}`;
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.name} | ${r.server} | ${bufferCell(r)} | ${r.rate ?? 'max'} | ${r.records_per_sec} | ${dash(r.drain_s)} | ${r.cpu_seconds_per_million} | ${r.redis_cpu_seconds === null ? '–' : r.cpu_seconds_per_million_total} | ${r.vcpu} | ${pair(r.rss_peak_mb, r.rss_steady_mb)} | ${pair(r.heap_used_peak_mb, r.heap_used_steady_mb)} | ${pair(r.external_peak_mb, r.external_steady_mb)} | ${dash(r.latency_p50_ms)} | ${dash(r.latency_p99_ms)} | ${delivery(r)} | ${dash(r.redis_used_memory_mb)} |`,
  );
  return `\nMachine: ${machine}\n\n${[head, sep, ...lines].join('\n')}\n`;
}

/**
 * Per scenario (and rate), the SUT's run and each anchor's on the same load, with the SUT's
 * ratio to each. `records per CPU-s` counts delivered records over the CPU of the load and
 * the drain; for a redis scenario the SUT's CPU includes redis-server's.
 */
export function anchorTable(rows: BenchResult[], skipped: Skipped[]): string {
  const head =
    '| # | scenario | server | buffer | records/s end to end | records per CPU-s | CPU-s per 1M | peak RSS MB | ratio (Estuary / this) |';
  const sep = `|${'---|'.repeat(9)}`;
  const lines: string[] = [];
  const key = (scenario: number, rate: number | null) => `${scenario}@${rate ?? 'max'}`;
  const groups = new Map<string, { base?: BenchResult; anchors: BenchResult[]; skipped: Skipped[] }>();
  const group = (k: string) => {
    let g = groups.get(k);
    if (!g) {
      g = { anchors: [], skipped: [] };
      groups.set(k, g);
    }
    return g;
  };
  for (const r of rows) {
    const g = group(key(r.scenario, r.rate));
    if (r.server_version === null) g.base = r;
    else g.anchors.push(r);
  }
  for (const s of skipped) group(key(s.scenario, s.rate)).skipped.push(s);

  for (const g of groups.values()) {
    const base = g.base;
    for (const r of [...(base ? [base] : []), ...g.anchors]) {
      const cpu =
        r.redis_cpu_seconds === null
          ? String(r.cpu_seconds_per_million_total)
          : `${r.cpu_seconds_per_million_total} incl. redis (${r.cpu_seconds_per_million} + redis ${round2(r.cpu_seconds_per_million_total - r.cpu_seconds_per_million)})`;
      let ratio = '–';
      if (base && r !== base && base.records_per_cpu_second && r.records_per_cpu_second) {
        ratio = `${round2(base.records_per_cpu_second / r.records_per_cpu_second)}× records per CPU-s; peak RSS ${base.rss_peak_mb} vs ${r.rss_peak_mb} MB`;
      }
      const rate = r.rate ? ` @ ${r.rate}/s` : '';
      const server = r.server_version ? `${r.server} (${r.server_version})` : r.server;
      const lost =
        r.records_received < r.records_acked
          ? ` (${r.records_acked - r.records_received} acked, not delivered)`
          : '';
      lines.push(
        `| ${r.scenario} | ${r.name}${rate} | ${server} | ${bufferCell(r)} | ${r.delivered_per_sec}${lost} | ${dash(r.records_per_cpu_second)} | ${cpu} | ${r.rss_peak_mb} | ${ratio} |`,
      );
    }
    for (const s of g.skipped) {
      const rate = s.rate ? ` @ ${s.rate}/s` : '';
      lines.push(
        s.server === undefined
          ? `| ${s.scenario} | ${s.name}${rate} | – | no anchor (${s.reason}) | | | | | |`
          : `| ${s.scenario} | ${s.name}${rate} | ${s.server} | skipped: ${s.reason} | | | | | |`,
      );
    }
  }
  return `\nSide by side (same load generator, same parameters, one after another):\n\n${[head, sep, ...lines].join('\n')}\n
records/s end to end: records delivered per second of load + drain (it includes the last 1 s flush).
records per CPU-s: delivered records over the server's CPU from the first record to the last delivered.
`;
}

function round2(n: number): number {
  return Number(n.toFixed(2));
}
