import { connect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { pino } from 'pino';
import type { Batch } from '../../src/core/batch.ts';
import { unpack } from '../../src/core/msgpack.ts';
import type { ForwardInput } from '../../src/inputs/forward/index.ts';
import { forwardInput } from '../../src/inputs/forward/index.ts';
import type { Emit } from '../../src/inputs/input.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { MsgpackFrameDecoder } from '../../src/protocol/forward/decoder.ts';
import { waitFor } from './wait.ts';

/** A raw forward-protocol client: bytes out, decoded server frames in. */
export class RawClient {
  readonly socket: Socket;
  readonly frames: Uint8Array[] = [];
  readonly texts: string[] = [];
  closed = false;
  private readonly decoder = new MsgpackFrameDecoder({ maxMessageSize: 1 << 20, maxDepth: 16 });
  private readonly json: boolean;

  private constructor(socket: Socket, json: boolean) {
    this.socket = socket;
    this.json = json;
    socket.on('data', (chunk: Buffer) => {
      if (this.json) this.texts.push(chunk.toString('utf8'));
      else this.decoder.push(chunk, (f) => this.frames.push(Buffer.from(f)));
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  static async connect(
    where: { port?: number; path?: string; tls?: ConnectionOptions },
    json = false,
  ): Promise<RawClient> {
    const socket = where.tls
      ? tlsConnect({ host: '127.0.0.1', port: where.port!, ...where.tls })
      : where.path
        ? connect(where.path)
        : connect(where.port!, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once(where.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawClient(socket, json);
  }

  send(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** The n-th server frame (0-based), decoded; waits for it. */
  async frame(n: number, timeoutMs = 3000): Promise<unknown> {
    await waitFor(() => this.frames.length > n, { timeoutMs, what: `server frame ${n}` });
    return unpack(this.frames[n]!);
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.closed, { timeoutMs, what: 'the server to close the connection' });
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ForwardHarness {
  input: ForwardInput;
  port: number;
  batches: Batch[];
  metrics: Metrics;
  logs: Record<string, unknown>[];
}

const running: ForwardInput[] = [];
export async function stopAllForward(): Promise<void> {
  await Promise.all(running.splice(0).map((i) => i.stop()));
}

/** A forward input on 127.0.0.1, a free port, recording its batches (or calling `emit`). */
export async function startForward(
  options: Record<string, unknown> = {},
  emit?: Emit,
  configDir = process.cwd(),
): Promise<ForwardHarness> {
  const metrics = new Metrics();
  const batches: Batch[] = [];
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) }).child({
    plugin_id: 'fwd',
  });
  const config = forwardInput.schema.parse({ listen: '127.0.0.1', port: 0, ...options });
  const input = forwardInput.create(config, { id: 'fwd', logger, metrics, configDir }) as ForwardInput;
  running.push(input);
  await input.start(
    emit ??
      (async (batch) => {
        batches.push(batch);
      }),
  );
  return { input, port: input.port, batches, metrics, logs };
}

export async function metricValue(
  metric: { get(): Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((n, v) => n + v.value, 0);
}
