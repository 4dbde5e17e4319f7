/**
 * What the output conformance suite and the plugin test kit run against: sinks that answer
 * as scripted or not at all, and waiting without sleeping. Estuary's own tests use them too
 * (test/support re-exports them).
 */
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; never a bare sleep. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 10, what = 'condition' } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * How `work` settled, failing if it is still pending after `timeoutMs`: for "must not hang"
 * checks that then look at the value or the error.
 */
export async function settlesWithin<T>(
  work: Promise<T>,
  timeoutMs: number,
): Promise<{ value?: T; error?: unknown; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${timeoutMs}ms`)), timeoutMs);
  });
  try {
    return await Promise.race([
      work.then(
        (value) => ({ value, ms: Date.now() - started }),
        (error: unknown) => ({ error, ms: Date.now() - started }),
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

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
    this.server = createHttpServer((req, res) => {
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

/**
 * A TCP server on 127.0.0.1 that accepts connections, reads what it is sent and never answers:
 * the sink that hangs, for tests of deadlines and aborts.
 */
export class SilentServer {
  port = 0;
  /** Connections accepted so far. */
  accepted = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((socket) => {
    this.accepted += 1;
    this.sockets.add(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  });

  static async start(): Promise<SilentServer> {
    const silent = new SilentServer();
    await new Promise<void>((resolve, reject) => {
      silent.server.once('error', reject);
      silent.server.listen(0, '127.0.0.1', () => resolve());
    });
    silent.port = (silent.server.address() as AddressInfo).port;
    return silent;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Connections still open (an abandoned request closes its own). */
  get open(): number {
    return this.sockets.size;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
