/**
 * tcp_json_lines: a TCP listener taking one JSON object per line. Each line is answered, in
 * order, with `ok` once its record is durable in the buffer of every output it routes to (the
 * promise `emit` returns), or `error: <why>` when it was not taken (not a JSON object, too
 * long, the buffers full): a sender resends what got no `ok`, so nothing acked is lost.
 *
 * Lines that arrive together go in one emit; while it is pending the socket is not read, so
 * a sender faster than the buffers is slowed down by TCP itself.
 *
 * Written against the public plugin API only: nothing of Estuary is imported at run time.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { LogRecord, PluginApi, PluginDefinitions, PluginEmit } from 'estuary/plugin';

export default (api: PluginApi): PluginDefinitions => {
  const { z } = api;
  const schema = z.strictObject({
    listen: z.string().default('0.0.0.0'),
    port: api.schemas.port(),
    /** The tag of every record. */
    tag: z.string().min(1).default('tcp'),
    /** A longer line is answered with an error and skipped. */
    max_line_size: api.schemas.size().default(1024 * 1024),
  });
  return {
    inputs: [
      api.defineInput({
        type: 'tcp_json_lines',
        schema,
        create(config, ctx) {
          const connections = ctx.metrics.gauge('tcp_json_lines_connections', 'Open connections.');
          const refused = ctx.metrics.counter(
            'tcp_json_lines_refused_total',
            'Lines answered with an error.',
            ['reason'],
          );
          const sockets = new Set<Socket>();
          /** Answers waiting on their emit: stop lets them finish. */
          const inflight = new Set<Promise<void>>();
          let server: Server | undefined;
          let listening = false;

          const serve = (socket: Socket, emit: PluginEmit) => {
            sockets.add(socket);
            connections.inc();
            socket.on('close', () => {
              sockets.delete(socket);
              connections.dec();
            });
            socket.on('error', (err) => ctx.logger.debug({ err: err.message }, 'connection error'));
            let pending = '';
            socket.setEncoding('utf8');
            socket.on('data', (data: string) => {
              pending += data;
              const end = pending.lastIndexOf('\n');
              if (end < 0) {
                if (pending.length > config.max_line_size) {
                  refused.inc({ reason: 'too_long' });
                  socket.end('error: line too long\n');
                }
                return;
              }
              const lines = pending.slice(0, end).split('\n');
              pending = pending.slice(end + 1);
              socket.pause();
              const answered = answer(lines, emit).then((replies) => {
                if (socket.writable) socket.write(replies.join(''));
                socket.resume();
                inflight.delete(answered);
              });
              inflight.add(answered);
            });
          };

          /** One reply per line, in order; the records are emitted together and acked together. */
          const answer = async (lines: string[], emit: PluginEmit): Promise<string[]> => {
            const replies: string[] = [];
            const records: LogRecord[] = [];
            const at: number[] = [];
            for (const line of lines) {
              const text = line.endsWith('\r') ? line.slice(0, -1) : line;
              const reason = text.length > config.max_line_size ? 'too_long' : undefined;
              const record = reason ? undefined : parseObject(text);
              if (!record) {
                refused.inc({ reason: reason ?? 'invalid' });
                replies.push(`error: ${reason ? 'line too long' : 'not a JSON object'}\n`);
                continue;
              }
              at.push(replies.length);
              replies.push('');
              records.push(record);
            }
            if (records.length === 0) return replies;
            let reply = 'ok\n';
            try {
              await emit(config.tag, records);
            } catch (err) {
              refused.inc(
                { reason: err instanceof api.BackpressureError ? 'backpressure' : 'error' },
                records.length,
              );
              reply = `error: ${(err as Error).message}\n`;
            }
            for (const i of at) replies[i] = reply;
            return replies;
          };

          return {
            async start(emit) {
              const listener = createServer((socket) => serve(socket, emit));
              server = listener;
              await new Promise<void>((resolve, reject) => {
                listener.once('error', reject);
                listener.listen(config.port, config.listen, () => {
                  listener.off('error', reject);
                  resolve();
                });
              });
              listening = true;
              ctx.logger.info({ listen: config.listen, port: config.port }, 'listening');
            },
            async stop() {
              listening = false;
              const closed = new Promise<void>((resolve) =>
                server ? server.close(() => resolve()) : resolve(),
              );
              // Lines already read are answered; what a sender sent after gets no ok, and is resent.
              await Promise.allSettled(inflight);
              for (const socket of sockets) socket.destroy();
              await closed;
            },
            ready: () => listening,
          };
        },
      }),
    ],
  };
};

function parseObject(text: string): LogRecord | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as LogRecord)
      : undefined;
  } catch {
    return undefined;
  }
}
