import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { RetryableError } from '../../src/core/errors.ts';

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

/**
 * Points a write at a SilentServer with a signal that aborts after `abortMs`, and checks the
 * write gives up then: a RetryableError matching `message`, within half a second of the abort.
 */
export async function assertAbandonedAtAbort(
  write: (url: string, signal: AbortSignal) => Promise<unknown>,
  message: RegExp,
  abortMs = 300,
): Promise<void> {
  const silent = await SilentServer.start();
  try {
    const started = Date.now();
    await assert.rejects(write(silent.url, AbortSignal.timeout(abortMs)), (err: Error) => {
      assert.ok(err instanceof RetryableError, String(err));
      assert.match(err.message, message);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= abortMs - 20 && took < abortMs + 500, `abandoned after ${took}ms`);
    assert.equal(silent.accepted, 1, 'the request reached the server');
  } finally {
    await silent.stop();
  }
}
