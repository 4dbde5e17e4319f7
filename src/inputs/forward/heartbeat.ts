import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '../../logger.ts';

/** Fluentd's in_forward answers every UDP heartbeat datagram with this single byte. */
export const HEARTBEAT_REPLY = Buffer.from([0]);

/**
 * The UDP heartbeat Fluentd's out_forward sends with `heartbeat_type udp`, on the TCP port's
 * number. One byte back for every datagram (never more than came in, so no amplification).
 */
export class Heartbeat {
  private socket: Socket | undefined;
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  async start(host: string, port: number): Promise<void> {
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.logger.warn({ err: err.message }, 'forward heartbeat socket error'));
    socket.on('message', (_data, peer) => {
      socket.send(HEARTBEAT_REPLY, peer.port, peer.address, (err) => {
        if (err) this.logger.debug({ err: err.message, remote: peer.address }, 'heartbeat reply failed');
      });
    });
    this.socket = socket;
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}
