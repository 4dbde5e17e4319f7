/**
 * The tcp_json_lines example plugin, tested as its author would: only through
 * estuary/plugin/testkit, with a real TCP client.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { buildInput, freePort, waitFor } from 'estuary/plugin/testkit';
import tcpJsonLines from '../../examples/plugins/tcp-json-lines/index.ts';

/** A connection to the listener and the reply lines it has read so far. */
async function client(port: number): Promise<{ socket: Socket; replies: string[] }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const replies: string[] = [];
  let rest = '';
  socket.setEncoding('utf8');
  socket.on('data', (data: string) => {
    const parts = (rest + data).split('\n');
    rest = parts.pop()!;
    replies.push(...parts);
  });
  return { socket, replies };
}

describe('tcp_json_lines input', () => {
  async function listener(options: Record<string, unknown> = {}) {
    const port = await freePort();
    const input = await buildInput(tcpJsonLines, 'tcp_json_lines', {
      listen: '127.0.0.1',
      port,
      tag: 'app.tcp',
      ...options,
    });
    return { port, input, [Symbol.asyncDispose]: () => input.stop() };
  }

  it('acks a line only once its emit resolves (the records are durable), in order', async () => {
    await using l = await listener();
    assert.equal(l.input.input.ready(), true);
    l.input.emitBehaviour = 'hold';
    const c = await client(l.port);
    c.socket.write('{"msg":"one"}\n{"msg":"two"}\n');
    await waitFor(() => l.input.held === 1, { what: 'the emit to be pending' });
    // Pending: nothing acked yet, and the lines went out together.
    assert.deepEqual(c.replies, []);
    assert.equal(l.input.emitted.length, 0);
    l.input.release();
    await waitFor(() => c.replies.length === 2, { what: 'two acks' });
    assert.deepEqual(c.replies, ['ok', 'ok']);
    assert.equal(l.input.emitted.length, 1);
    assert.equal(l.input.emitted[0]!.tag, 'app.tcp');
    assert.deepEqual(l.input.emitted[0]!.records, [{ msg: 'one' }, { msg: 'two' }]);
    assert.equal(
      l.input.emitted[0]!.options.wait,
      true,
      'a full buffer makes the sender wait, as forward does',
    );
    c.socket.destroy();
  });

  it('a failed emit answers every line of it with the error; a line that is no JSON object is refused alone', async () => {
    await using l = await listener();
    const c = await client(l.port);
    c.socket.write('{"n":1}\nnot json\n[1,2]\n');
    await waitFor(() => c.replies.length === 3, { what: 'three replies' });
    assert.deepEqual(c.replies, ['ok', 'error: not a JSON object', 'error: not a JSON object']);
    l.input.emitBehaviour = new Error('buffer full');
    c.socket.write('{"n":2}\n{"n":3}\n');
    await waitFor(() => c.replies.length === 5, { what: 'two more replies' });
    assert.deepEqual(c.replies.slice(3), ['error: buffer full', 'error: buffer full']);
    assert.deepEqual(
      l.input.emitted.flatMap((e) => e.records),
      [{ n: 1 }],
    );
    const metrics = await l.input.metrics();
    assert.match(
      metrics,
      /estuary_plugin_tcp_json_lines_refused_total\{plugin_id="tcp_json_lines.test",reason="invalid"\} 2/,
    );
    assert.match(
      metrics,
      /estuary_plugin_tcp_json_lines_refused_total\{plugin_id="tcp_json_lines.test",reason="error"\} 2/,
    );
    assert.match(metrics, /estuary_plugin_tcp_json_lines_connections\{plugin_id="tcp_json_lines.test"\} 1/);
    c.socket.destroy();
  });

  it('a line over max_line_size is refused; a partial line waits for its end', async () => {
    await using l = await listener({ max_line_size: 32 });
    const c = await client(l.port);
    c.socket.write('{"msg":"');
    c.socket.write('split"}\n');
    await waitFor(() => c.replies.length === 1, { what: 'the ack of the joined line' });
    assert.deepEqual(l.input.emitted[0]!.records, [{ msg: 'split' }]);
    c.socket.write(`{"msg":"${'x'.repeat(40)}"}\n`);
    await waitFor(() => c.replies.length === 2, { what: 'the refusal' });
    assert.equal(c.replies[1], 'error: line too long');
    c.socket.destroy();
  });

  it('stop answers what was read, then closes; ready() turns false', async () => {
    const l = await listener();
    l.input.emitBehaviour = 'hold';
    const c = await client(l.port);
    c.socket.write('{"last":true}\n');
    await waitFor(() => l.input.held === 1);
    const stopped = l.input.stop();
    assert.equal(l.input.input.ready(), false);
    l.input.release();
    await stopped;
    await waitFor(() => c.socket.closed, { what: 'the connection closed' });
    assert.deepEqual(c.replies, ['ok']);
  });

  it('a port in use fails the start', async () => {
    await using l = await listener();
    await assert.rejects(
      buildInput(tcpJsonLines, 'tcp_json_lines', { listen: '127.0.0.1', port: l.port }),
      /failed to start: listen EADDRINUSE/,
    );
  });
});
