import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
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

/**
 * The HTTP sinks' server: each request's body read whole, then `handle`d; a body `handle`
 * cannot read is `refuse`d (a 400 in the sink's error shape). Reports to the parent once it listens.
 */
export function serveHttp(
  counter: SinkCounter,
  address: { port: string | undefined; host: string | undefined },
  handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
  refuse: (res: ServerResponse, err: unknown) => void,
): void {
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        handle(req, res, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      } catch (err) {
        refuse(res, err);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(address.port), address.host, () => counter.report());
}
