import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * What the fakes of AWS's JSON 1.1 services (Firehose, CloudWatch Logs) share: `POST /` with
 * `X-Amz-Target: <Service_version>.<Operation>`, a SigV4 Authorization header, and errors as
 * `{"__type": …, "message": …}` with `x-amzn-errortype`, the way the official SDK reads them.
 */

export type AwsJsonReply = { status: number; headers?: Record<string, string>; body: string } | 'hang';

export type AwsJsonHandler = (method: string, headers: IncomingHttpHeaders, body: Buffer) => AwsJsonReply;

/** An error in the JSON 1.1 shape. */
export function awsJsonError(
  status: number,
  type: string,
  message: string,
  headers: Record<string, string> = {},
): AwsJsonReply {
  return {
    status,
    headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': type, ...headers },
    body: JSON.stringify({ __type: type, message }),
  };
}

/** A 200 answer with this body. */
export function awsJsonOk(body: unknown): AwsJsonReply {
  return {
    status: 200,
    headers: { 'content-type': 'application/x-amz-json-1.1' },
    body: JSON.stringify(body),
  };
}

/** What a fake answered, for its call log: `200`, `hang`, or the error type. */
export function answerOf(reply: AwsJsonReply): string {
  if (reply === 'hang') return 'hang';
  if (reply.status === 200) return '200';
  try {
    return String((JSON.parse(reply.body) as { __type?: unknown }).__type);
  } catch {
    return String(reply.status);
  }
}

/**
 * The access key of a request signed with SigV4 for `service`; null when the Authorization
 * header is not such a signature (AWS answers MissingAuthenticationTokenException).
 */
export function signedKeyId(headers: IncomingHttpHeaders, service: string): string | null {
  const auth = String(headers.authorization ?? '');
  const m = new RegExp(
    `^AWS4-HMAC-SHA256 Credential=([^/]+)/\\d{8}/[^/]+/${service}/aws4_request, ?SignedHeaders=[^,]+, ?Signature=[0-9a-f]{64}$`,
  ).exec(auth);
  return m ? m[1]! : null;
}

/** PEM files of a certificate and its key: the server speaks HTTPS with them. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** The HTTP side: collects each request's body and writes the handler's reply (or never answers). */
export class AwsJsonServer {
  private readonly server: Server;
  private readonly scheme: 'http' | 'https';

  private constructor(handle: AwsJsonHandler, tls: TlsFiles | undefined) {
    const serve = (req: IncomingMessage, res: ServerResponse) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const reply = handle(req.method ?? '', req.headers, Buffer.concat(parts));
        if (reply === 'hang') return;
        // AWS puts a request id on every answer; Fluent Bit takes a 200 without one for a broken answer.
        res.writeHead(reply.status, { 'x-amzn-requestid': randomUUID(), ...reply.headers }).end(reply.body);
      });
    };
    this.scheme = tls ? 'https' : 'http';
    // Agents that only speak TLS to AWS (Fluent Bit) get a self-signed certificate to trust.
    this.server = tls
      ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, serve)
      : createServer(serve);
  }

  static async start(handle: AwsJsonHandler, tls?: TlsFiles): Promise<AwsJsonServer> {
    const s = new AwsJsonServer(handle, tls);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    return s;
  }

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
