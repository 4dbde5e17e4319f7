import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { pack, unpack } from '../../src/core/msgpack.ts';
import { MsgpackFrameDecoder } from '../../src/protocol/forward/decoder.ts';
import {
  checkPing,
  encodeHelo,
  type Helo,
  parsePing,
  pong,
  randomSalt,
} from '../../src/protocol/forward/handshake.ts';

export interface ReceiverOptions {
  /** `ack` acks every chunk; `silent` reads and never answers; `reset` drops each connection at once. */
  answer?: 'ack' | 'silent' | 'reset';
  /** Shake hands first, with this shared key: a PING made with another gets PONG false and a close. */
  sharedKey?: string;
  /** Listen with TLS. */
  tls?: { cert: Buffer; key: Buffer };
}

/** A scripted forward receiver on a free port of 127.0.0.1: records messages, answers as told. */
export async function forwardReceiver(options: ReceiverOptions = {}) {
  const answer = options.answer ?? 'ack';
  const messages: unknown[][] = [];
  const sockets = new Set<Socket>();
  const stats = { connections: 0, closed: 0, refusedHandshakes: 0 };
  const onConnection = (socket: Socket) => {
    stats.connections += 1;
    sockets.add(socket);
    socket.on('close', () => {
      stats.closed += 1;
      sockets.delete(socket);
    });
    socket.on('error', () => undefined);
    if (answer === 'reset') {
      socket.resetAndDestroy();
      return;
    }
    const helo: Helo | undefined = options.sharedKey
      ? { nonce: randomSalt(), auth: Buffer.alloc(0), keepalive: true }
      : undefined;
    let shaken = helo === undefined;
    if (helo) socket.write(encodeHelo(helo));
    const decoder = new MsgpackFrameDecoder({ maxMessageSize: 64 << 20, maxDepth: 16 });
    socket.on('data', (data: Buffer) =>
      decoder.push(data, (frame) => {
        if (!shaken) {
          const security = {
            selfHostname: 'receiver',
            sharedKey: options.sharedKey!,
            userAuth: false,
            users: [],
          };
          const ping = parsePing(frame);
          const result = checkPing(ping, helo!, security, { allowed: true, address: '127.0.0.1' });
          socket.write(pack(pong(result, ping, helo!, security)));
          if (!result.ok) {
            stats.refusedHandshakes += 1;
            socket.end();
          }
          shaken = result.ok;
          return;
        }
        // A copy: the frame is a view the next push overwrites.
        const message = unpack(Buffer.from(frame)) as unknown[];
        messages.push(message);
        const chunk = (message[2] as { chunk?: string } | undefined)?.chunk;
        if (answer === 'ack' && chunk) socket.write(pack({ ack: chunk }));
      }),
    );
  };
  const server: Server = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, onConnection)
    : createTcpServer(onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return { port, messages, stats, close };
}
