import { connect, type Socket } from 'node:net';
import { waitFor } from './wait.ts';

/** POSTs `body` as JSON to the HTTP input on 127.0.0.1:`port` under `tag`. */
export function postJson(port: number, tag: string, body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/${tag}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

export interface RawResponse {
  status: number;
  /** Header names lower-cased. */
  headers: Record<string, string>;
  body: string;
}

/**
 * One HTTP/1.1 connection written by hand, for what fetch cannot do: send the headers and
 * hold the body back, send a chunked body piece by piece, or vanish mid-body.
 */
export class RawHttp {
  readonly socket: Socket;
  closed = false;
  private received = Buffer.alloc(0);

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    // The server may close while we still write: that is what some tests wait for.
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<RawHttp> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawHttp(socket);
  }

  /** Request line and headers of a POST, nothing of the body. */
  sendHead(path: string, headers: Record<string, string | number>): Promise<void> {
    const lines = [`POST ${path} HTTP/1.1`, 'host: 127.0.0.1'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    return this.write(`${lines.join('\r\n')}\r\n\r\n`);
  }

  /** One piece of a chunked body (an empty one ends it). */
  sendChunk(bytes: Uint8Array): Promise<void> {
    return this.write(
      Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]),
    );
  }

  write(bytes: Uint8Array | string): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.socket.destroyed) resolve();
      else this.socket.write(bytes, () => resolve());
    });
  }

  /** The response, once its head and its Content-Length body have arrived; undefined before. */
  response(): RawResponse | undefined {
    const end = this.received.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [statusLine, ...lines] = this.received.subarray(0, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const body = this.received.subarray(end + 4);
    if (body.length < Number(headers['content-length'] ?? 0)) return undefined;
    return { status: Number(statusLine!.split(' ')[1]), headers, body: body.toString('utf8') };
  }

  async waitResponse(timeoutMs = 5000): Promise<RawResponse> {
    return waitFor(() => this.response(), { timeoutMs, what: 'the HTTP response' });
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.closed, { timeoutMs, what: 'the server to close the connection' });
  }

  /** Goes away at once, as a client that crashed mid-request. */
  destroy(): void {
    this.socket.destroy();
  }
}
