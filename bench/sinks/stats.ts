import { EventTime } from '../../src/core/event-time.ts';
import { LatencyHistogram } from '../latency.ts';

export interface SinkStats {
  received: number;
  latency_p50_ms: number | null;
  latency_p99_ms: number | null;
}

/** Counts what a sink received and how old it was on arrival (the EventTime the load generator stamped). */
export class SinkCounter {
  private readonly latency = new LatencyHistogram();
  received = 0;

  observe(time: EventTime | number | undefined, n: number): void {
    this.received += n;
    if (time === undefined) return;
    const sent = time instanceof EventTime ? time.sec * 1000 + time.nsec / 1e6 : time * 1000;
    const now = EventTime.now();
    this.latency.addMany(now.sec * 1000 + now.nsec / 1e6 - sent, n);
  }

  stats(): SinkStats {
    return {
      received: this.received,
      latency_p50_ms: this.latency.quantile(0.5),
      latency_p99_ms: this.latency.quantile(0.99),
    };
  }

  /** Under `fork`: tell the parent we listen, answer 'stats'. Alone: print stats every second. */
  report(): void {
    if (process.send) {
      process.on('message', (m) => {
        if (m === 'stats') process.send!(this.stats());
      });
      process.send('listening');
    } else {
      setInterval(() => process.stdout.write(`${JSON.stringify(this.stats())}\n`), 1000).unref();
    }
  }
}
