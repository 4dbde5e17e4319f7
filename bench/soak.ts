/**
 * `npm run bench -- --soak`: one long open-loop run of scenario 6's shape (PackedForward ×100,
 * acks → memory or redis buffer → forward sink) that keeps a memory series — a point every
 * 10 s: RSS from /proc, heap used and external from Estuary's /metrics — and says whether
 * memory settles or drifts. The harness runs it (bench/harness.ts, `seriesIntervalMs`); this
 * file turns its samples into the series, the summary and the table.
 */
import type { BenchResult } from './harness.ts';
import type { MemoryPoint } from './memory-metrics.ts';
import type { ProcSample } from './proc.ts';

export const SOAK_DEFAULTS = { durationMs: 10 * 60_000, rate: 20_000, intervalMs: 10_000 } as const;

export interface SeriesPoint {
  /** Seconds since the load started; the idle point (just before it) is 0. */
  t_s: number;
  /** `drained`: one point once the sink has every acked record. */
  phase: 'idle' | 'load' | 'drained';
  /** The SUT's process tree, from /proc. */
  rss_mb: number;
  heap_used_mb: number | null;
  external_mb: number | null;
  /** SUT CPU seconds per wall second since the previous point. */
  vcpu: number | null;
  /** The bench's redis-server, for the redis buffer. */
  redis_rss_mb: number | null;
}

const MB = 2 ** 20;
const round1 = (n: number) => Math.round(n * 10) / 10;

/** The sample taken closest to `at` (samples are in time order). */
function nearest(samples: readonly ProcSample[], at: number): ProcSample | undefined {
  let best: ProcSample | undefined;
  for (const s of samples) {
    if (best === undefined || Math.abs(s.at - at) < Math.abs(best.at - at)) best = s;
    else if (s.at > at) break;
  }
  return best;
}

const cpuOf = (s: ProcSample) => [...s.cpuSeconds.values()].reduce((a, b) => a + b, 0);

/**
 * The series from what the harness sampled: each answered /metrics scrape paired with the
 * /proc sample nearest it (250 ms apart, so within 125 ms). Scrapes during the drain are
 * left out — the buffer is emptying then, neither steady nor settled. A server without
 * Estuary's /metrics (a --sut) gets RSS alone on a grid of the same interval.
 */
export function buildSeries(input: {
  proc: readonly ProcSample[];
  redis: readonly ProcSample[] | undefined;
  memory: readonly MemoryPoint[];
  loadStart: number;
  loadEnd: number;
  drainEnd: number;
  intervalMs: number;
}): SeriesPoint[] {
  const { proc, redis, memory, loadStart, loadEnd, drainEnd, intervalMs } = input;
  const times: { at: number; memory: MemoryPoint | undefined }[] =
    memory.length > 0
      ? memory.map((m) => ({ at: m.at, memory: m }))
      : [
          { at: proc[0]?.at ?? loadStart, memory: undefined },
          ...Array.from({ length: Math.floor((loadEnd - loadStart) / intervalMs) }, (_, i) => ({
            at: loadStart + (i + 1) * intervalMs,
            memory: undefined,
          })),
          { at: drainEnd, memory: undefined },
        ];
  const series: SeriesPoint[] = [];
  let previous: ProcSample | undefined;
  for (const { at, memory: m } of times) {
    if (at > loadEnd && at < drainEnd) continue;
    const p = nearest(proc, at);
    if (p === undefined) continue;
    const phase = at < loadStart ? 'idle' : at <= loadEnd ? 'load' : 'drained';
    const r = redis && nearest(redis, at);
    series.push({
      t_s: phase === 'idle' ? 0 : round1((at - loadStart) / 1000),
      phase,
      rss_mb: round1(p.rssBytes / MB),
      heap_used_mb: m ? round1(m.heapBytes / MB) : null,
      external_mb: m ? round1(m.externalBytes / MB) : null,
      vcpu:
        previous && p.at > previous.at
          ? Math.round(((cpuOf(p) - cpuOf(previous)) / ((p.at - previous.at) / 1000)) * 1000) / 1000
          : null,
      redis_rss_mb: r ? round1(r.rssBytes / MB) : null,
    });
    previous = p;
  }
  return series;
}

export interface Trend {
  /** Least-squares slope over the second half of the load. */
  slope_mb_per_min: number;
  /**
   * What the samples' own scatter could produce by chance: 2 × the slope's standard error
   * (from the residuals around the fitted line), widened by √((1+r)/(1−r)) for the residuals'
   * lag-1 autocorrelation r, since samples 10 s apart sit in the same GC or buffer cycle.
   */
  noise_mb_per_min: number;
  /** Standard deviation of the residuals: the band the samples scatter in around the line. */
  residual_sd_mb: number;
  lag1_autocorrelation: number;
  samples: number;
  /** `grows`/`shrinks`: the slope is beyond the noise; `flat`: within it. */
  verdict: 'grows' | 'flat' | 'shrinks' | 'too few samples';
}

/** Fewer points than this (a run under ~2 minutes) cannot tell a slope from its noise. */
const MIN_TREND_SAMPLES = 6;
/** Past this the AR(1) widening explodes; a series that smooth is a ramp, and 0.9 already widens ×4.4. */
const MAX_AUTOCORRELATION = 0.9;

export function trend(points: readonly { t_s: number; value: number }[]): Trend {
  const n = points.length;
  const none: Trend = {
    slope_mb_per_min: 0,
    noise_mb_per_min: 0,
    residual_sd_mb: 0,
    lag1_autocorrelation: 0,
    samples: n,
    verdict: 'too few samples',
  };
  if (n < MIN_TREND_SAMPLES) return none;
  const xs = points.map((p) => p.t_s / 60);
  const ys = points.map((p) => p.value);
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const mx = mean(xs);
  const my = mean(ys);
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sxx += (xs[i]! - mx) ** 2;
    sxy += (xs[i]! - mx) * (ys[i]! - my);
  }
  if (sxx === 0) return none;
  const slope = sxy / sxx;
  const residuals = xs.map((x, i) => ys[i]! - (my + slope * (x - mx)));
  const ssr = residuals.reduce((a, e) => a + e * e, 0);
  let lagged = 0;
  for (let i = 1; i < n; i++) lagged += residuals[i]! * residuals[i - 1]!;
  const r = ssr > 0 ? Math.min(MAX_AUTOCORRELATION, Math.max(0, lagged / ssr)) : 0;
  const standardError = Math.sqrt(ssr / (n - 2) / sxx) * Math.sqrt((1 + r) / (1 - r));
  const noise = 2 * standardError;
  const round2 = (v: number) => Math.round(v * 100) / 100;
  return {
    slope_mb_per_min: round2(slope),
    noise_mb_per_min: round2(noise),
    residual_sd_mb: round2(Math.sqrt(ssr / (n - 2))),
    lag1_autocorrelation: round2(lagged / (ssr || 1)),
    samples: n,
    verdict: slope > noise ? 'grows' : slope < -noise ? 'shrinks' : 'flat',
  };
}

export interface SoakSummary {
  /** The second half of the load, what the plateau and the trends cover. */
  window_s: [number, number];
  rss_plateau_mb: number;
  rss_min_mb: number;
  rss_max_mb: number;
  rss_idle_mb: number | null;
  rss_drained_mb: number | null;
  heap_used_plateau_mb: number | null;
  external_plateau_mb: number | null;
  rss: Trend;
  heap_used: Trend | null;
  external: Trend | null;
  /** RSS − heap used − external: V8's reserved but unused heap, code, malloc arenas. */
  rest: Trend | null;
  verdict: string[];
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};

function signed(n: number): string {
  return `${n > 0 ? '+' : n < 0 ? '−' : '±'}${Math.abs(n)}`;
}

function describe(label: string, t: Trend, minutes: number): string {
  if (t.verdict === 'too few samples') return `${label}: too few samples for a trend (${t.samples})`;
  const rise = signed(round1(t.slope_mb_per_min * minutes));
  const what =
    t.verdict === 'flat'
      ? 'flat (within the noise)'
      : `${t.verdict} (real: beyond the noise; ${rise} MB over the window, ${signed(Math.round(t.slope_mb_per_min * 60))} MB/hour if it kept on)`;
  return `${label} ${signed(t.slope_mb_per_min)} MB/min (noise ±${t.noise_mb_per_min}) → ${what}`;
}

export function summarize(series: readonly SeriesPoint[], durationS: number): SoakSummary {
  const load = series.filter((p) => p.phase === 'load');
  const from = durationS / 2;
  const half = load.filter((p) => p.t_s >= from);
  const rssValues = half.map((p) => p.rss_mb);
  const pick = (f: (p: SeriesPoint) => number | null) =>
    half.flatMap((p) => {
      const v = f(p);
      return v === null ? [] : [{ t_s: p.t_s, value: v }];
    });
  const withMemory = half.some((p) => p.heap_used_mb !== null);
  const rss = trend(pick((p) => p.rss_mb));
  const heap = withMemory ? trend(pick((p) => p.heap_used_mb)) : null;
  const external = withMemory ? trend(pick((p) => p.external_mb)) : null;
  const rest = withMemory
    ? trend(
        pick((p) =>
          p.heap_used_mb === null || p.external_mb === null
            ? null
            : p.rss_mb - p.heap_used_mb - p.external_mb,
        ),
      )
    : null;
  const plateau = median(rssValues);
  const minutes = ((load.at(-1)?.t_s ?? from) - from) / 60;
  const verdict = [
    `RSS plateau ${plateau} MB (second half ${Math.min(...rssValues)}–${Math.max(...rssValues)}); ${describe('drift', rss, minutes)}`,
  ];
  // Freed pages mostly stay resident: an RSS that only steps up has almost no scatter, so any
  // step reads as real — say so, the size of the steps is what matters then.
  if (rss.verdict === 'grows' && rssValues.every((v, i) => i === 0 || v >= rssValues[i - 1]!))
    verdict.push('RSS never fell in the second half: a high-water mark of pages kept, rising in steps');
  if (heap && external && rest) {
    verdict.push(
      `${describe('heap used', heap, minutes)}; ${describe('external', external, minutes)}; ${describe('rest of RSS', rest, minutes)}`,
    );
    if (rss.verdict === 'grows') {
      const growing = [
        heap.verdict === 'grows' ? 'the V8 heap (live JS objects: compare two heap snapshots)' : '',
        external.verdict === 'grows' ? 'external memory (Buffers held outside the heap)' : '',
        rest.verdict === 'grows'
          ? "neither heap in use nor external: V8's reserved space, code or the allocator's arenas"
          : '',
      ].filter((s) => s !== '');
      verdict.push(
        `RSS grows in: ${growing.length > 0 ? growing.join('; ') : 'no single part beyond its noise'}`,
      );
    }
  }
  const one = (phase: SeriesPoint['phase']) => series.find((p) => p.phase === phase)?.rss_mb ?? null;
  return {
    window_s: [round1(from), load.at(-1)?.t_s ?? round1(from)],
    rss_plateau_mb: plateau,
    rss_min_mb: rssValues.length > 0 ? Math.min(...rssValues) : 0,
    rss_max_mb: rssValues.length > 0 ? Math.max(...rssValues) : 0,
    rss_idle_mb: one('idle'),
    rss_drained_mb: one('drained'),
    heap_used_plateau_mb: withMemory ? median(pick((p) => p.heap_used_mb).map((p) => p.value)) : null,
    external_plateau_mb: withMemory ? median(pick((p) => p.external_mb).map((p) => p.value)) : null,
    rss,
    heap_used: heap,
    external,
    rest,
    verdict,
  };
}

/** At most this many load rows in the printed table; the JSON has every point. */
const TABLE_ROWS = 40;

export function soakTable(
  result: BenchResult,
  series: readonly SeriesPoint[],
  summary: SoakSummary,
  context: { machine: string; loadavg: [number, number] },
): string {
  const redis = series.some((p) => p.redis_rss_mb !== null);
  const dash = (v: number | null) => (v === null ? '–' : String(v));
  const load = series.filter((p) => p.phase === 'load');
  const stride = Math.ceil(load.length / TABLE_ROWS);
  const shown = series.filter(
    (p) => p.phase !== 'load' || load.indexOf(p) % stride === 0 || p === load.at(-1),
  );
  const head = `| t s | RSS MB | heap MB | external MB | rest MB | vCPU |${redis ? ' redis RSS MB |' : ''}`;
  const sep = `|${'---|'.repeat(redis ? 7 : 6)}`;
  const rows = shown.map((p) => {
    const rest =
      p.heap_used_mb === null || p.external_mb === null
        ? null
        : round1(p.rss_mb - p.heap_used_mb - p.external_mb);
    const t = p.phase === 'load' ? String(p.t_s) : `${p.phase}${p.phase === 'drained' ? ` (${p.t_s})` : ''}`;
    return `| ${t} | ${p.rss_mb} | ${dash(p.heap_used_mb)} | ${dash(p.external_mb)} | ${dash(rest)} | ${dash(p.vcpu)} |${redis ? ` ${dash(p.redis_rss_mb)} |` : ''}`;
  });
  const thinned = stride > 1 ? `1 load point in ${stride} shown; all ${series.length} in the JSON.\n` : '';
  const [from, to] = summary.window_s;
  return `
Soak: ${result.name} at ${result.rate} records/s for ${result.duration_s} s (${result.server})
Machine: ${context.machine}; load average ${context.loadavg[0]} at the start, ${context.loadavg[1]} at the end

${[head, sep, ...rows].join('\n')}
${thinned}
rest = RSS − heap used − external (V8's reserved but unused heap, code, allocator arenas).
Delivered ${result.records_received}/${result.records_acked} acked (${result.records_failed} failed), drain ${dash(result.drain_s)} s, latency p50 ${dash(result.latency_p50_ms)} / p99 ${dash(result.latency_p99_ms)} ms, vCPU ${result.vcpu}, ${result.cpu_seconds_per_million} CPU-s per 1M, RSS peak ${result.rss_peak_mb} MB (250 ms samples).
Second half (${from}–${to} s), least-squares slopes:
${summary.verdict.map((v) => `  ${v}`).join('\n')}
`;
}
