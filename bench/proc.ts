import { readdirSync, readFileSync } from 'node:fs';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** performance.now() when read. */
  at: number;
  /** CPU time (user + system) of each process of the tree. */
  cpuSeconds: Map<number, number>;
  /** Resident memory of the whole tree. */
  rssBytes: number;
}

interface Stat {
  ppid: number;
  cpuSeconds: number;
}

function readStat(pid: number): Stat {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(fields[1]),
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
  };
}

function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

/**
 * A process and all its descendants (service.workers forks worker processes; `sh -c` may
 * stand in front of another server): CPU per process and RSS summed.
 */
export function readTree(root: number): ProcSample {
  const stats = new Map<number, Stat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      stats.set(Number(name), readStat(Number(name)));
    } catch {
      // Gone between the listing and the read.
    }
  }
  if (!stats.has(root)) throw new Error(`process ${root} is gone`);
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, s] of stats) if (s.ppid === tree[i]) tree.push(pid);
  const cpuSeconds = new Map<number, number>();
  let rssBytes = 0;
  for (const pid of tree) {
    cpuSeconds.set(pid, stats.get(pid)!.cpuSeconds);
    try {
      rssBytes += readRss(pid);
    } catch {
      // Gone: its CPU so far still counts.
    }
  }
  return { at: performance.now(), cpuSeconds, rssBytes };
}

/** Highest value, and the median of the second half of the run (what it settled at under load). */
export function peakAndSteady(values: readonly number[]): { peak: number; steady: number } {
  const tail = values.slice(Math.floor(values.length / 2)).sort((a, b) => a - b);
  return {
    peak: values.length > 0 ? Math.max(...values) : 0,
    steady: tail[Math.floor(tail.length / 2)] ?? 0,
  };
}

export interface ProcSummary {
  cpuSeconds: number;
  seconds: number;
  rssPeakBytes: number;
  rssSteadyBytes: number;
}

/** Samples a process tree every `intervalMs` until stopped; gives peak and steady (median of the last half) RSS. */
export class ProcSampler {
  readonly samples: ProcSample[] = [];
  readonly pid: number;
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number, intervalMs = 250) {
    this.pid = pid;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    try {
      this.samples.push(readTree(this.pid));
    } catch {
      // The process is gone; the samples so far stand.
    }
  }

  /** The figures so far, sampling goes on: the load phase's, when CPU is counted on through the drain. */
  summary(): ProcSummary {
    this.sample();
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    // Per process, from its first sample to its last: a process started later counts from then.
    const firstSeen = new Map<number, number>();
    const lastSeen = new Map<number, number>();
    for (const s of this.samples)
      for (const [pid, cpu] of s.cpuSeconds) {
        if (!firstSeen.has(pid)) firstSeen.set(pid, cpu);
        lastSeen.set(pid, cpu);
      }
    let cpuSeconds = 0;
    for (const [pid, cpu] of lastSeen) cpuSeconds += cpu - firstSeen.get(pid)!;
    const rss = peakAndSteady(this.samples.map((s) => s.rssBytes));
    return {
      cpuSeconds,
      seconds: (last.at - first.at) / 1000,
      rssPeakBytes: rss.peak,
      rssSteadyBytes: rss.steady,
    };
  }

  stop(): ProcSummary {
    clearInterval(this.timer);
    return this.summary();
  }
}

/** CPU seconds the tree has used so far (all its processes). */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const cpu of readTree(pid).cpuSeconds.values()) total += cpu;
  return total;
}
