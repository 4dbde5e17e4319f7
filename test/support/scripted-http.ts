import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** A request as the sink saw it, body decoded when it came gzipped. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  text: string;
}

/** What the sink answers: a status (with headers and a body), or nothing, ever. */
export type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/**
 * An HTTP sink on a free port of 127.0.0.1 that answers each request as `answer` says: for
 * tests of how an output reads statuses, Retry-After, 413s and silence.
 */
export class ScriptedHttpSink {
  readonly requests: SeenRequest[] = [];
  answer: (request: SeenRequest) => Reply;
  private readonly server: Server;

  private constructor(answer: (request: SeenRequest) => Reply) {
    this.answer = answer;
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const raw = Buffer.concat(parts);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        const seen = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          text: body.toString('utf8'),
        };
        this.requests.push(seen);
        const reply = this.answer(seen);
        if (reply === 'hang') return;
        res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
      });
    });
  }

  static async start(answer: (request: SeenRequest) => Reply): Promise<ScriptedHttpSink> {
    const sink = new ScriptedHttpSink(answer);
    await new Promise<void>((resolve) => sink.server.listen(0, '127.0.0.1', resolve));
    return sink;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Drops open connections too, hung requests included. */
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
