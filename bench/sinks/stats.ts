import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { parseArgs } from 'node:util';
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

/** Where an HTTP sink listens: `--port`, `--host`, and with `--cert` and `--key` (PEM files) over HTTPS. */
export interface SinkAddress {
  port: string | undefined;
  host: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** An HTTP sink's command line: `--port P [--host H] [--cert FILE --key FILE]`. */
export function sinkArgs(defaultPort: string): SinkAddress {
  return parseArgs({
    options: {
      port: { type: 'string', default: defaultPort },
      host: { type: 'string', default: '127.0.0.1' },
      cert: { type: 'string' },
      key: { type: 'string' },
    },
  }).values;
}

/** `make`, remembering each answer: for the parts of a sink's answers that repeat. */
export function memo<K, V>(make: (key: K) => V): (key: K) => V {
  const made = new Map<K, V>();
  return (key) => {
    let value = made.get(key);
    if (value === undefined) {
      value = make(key);
      made.set(key, value);
    }
    return value;
  };
}

const NEWLINE = 0x0a;

/** Lines in `text` (native newline search); a last line without `\n` counts too. */
export function countLines(text: Buffer): number {
  let n = 0;
  for (let at = text.indexOf(NEWLINE); at !== -1; at = text.indexOf(NEWLINE, at + 1)) n++;
  if (text.length > 0 && text[text.length - 1] !== NEWLINE) n++;
  return n;
}

/**
 * The HTTP sinks' server: each request's body read whole, then `handle`d; a body `handle`
 * cannot read is `refuse`d (a 400 in the sink's error shape). Over HTTPS when the address has
 * a certificate (clients that speak TLS only to the real service: Fluent Bit's AWS outputs).
 * Reports to the parent once it listens.
 */
export function serveHttp(
  counter: SinkCounter,
  address: SinkAddress,
  handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
  refuse: (res: ServerResponse, err: unknown) => void,
): void {
  const serve: RequestListener = (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      try {
        handle(req, res, parts.length === 1 ? parts[0]! : Buffer.concat(parts));
      } catch (err) {
        refuse(res, err);
      }
    });
  };
  const { cert, key } = address;
  const server =
    cert !== undefined && key !== undefined
      ? createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, serve)
      : createServer(serve);
  server.keepAliveTimeout = 60_000;
  server.listen(Number(address.port), address.host, () => counter.report());
}
