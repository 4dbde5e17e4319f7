import { readFileSync } from 'node:fs';

/** Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel. */
const TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** performance.now() when read. */
  at: number;
  cpuSeconds: number;
  rssBytes: number;
}

/** CPU time (user + system) and resident memory of a process, from /proc. */
export function readProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { at: performance.now(), cpuSeconds, rssBytes: rssKb * 1024 };
}

/** Samples a process every `intervalMs` until stopped; gives peak and steady (median of the last half) RSS. */
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
      this.samples.push(readProc(this.pid));
    } catch {
      // The process is gone; the samples so far stand.
    }
  }

  stop(): { cpuSeconds: number; seconds: number; rssPeakBytes: number; rssSteadyBytes: number } {
    clearInterval(this.timer);
    this.sample();
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const rss = this.samples.map((s) => s.rssBytes);
    const tail = rss.slice(Math.floor(rss.length / 2)).sort((a, b) => a - b);
    return {
      cpuSeconds: last.cpuSeconds - first.cpuSeconds,
      seconds: (last.at - first.at) / 1000,
      rssPeakBytes: Math.max(...rss),
      rssSteadyBytes: tail[Math.floor(tail.length / 2)] ?? 0,
    };
  }
}
