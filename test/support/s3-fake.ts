import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small S3 for what s3rver does not do: it checks the access key (InvalidAccessKeyId),
 * refuses a denied one (AccessDenied) and an expired session token (ExpiredToken), keeps
 * multipart uploads until they are completed or aborted (so a test sees orphaned parts), refuses
 * parts under 5 MiB but the last (EntityTooSmall), and answers with S3's XML error shapes. A
 * `script` can answer any request first (SlowDown, 500, a hang). Path-style requests only.
 */

export type S3Op =
  | 'PutObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'Other';

export interface S3Request {
  op: S3Op;
  method: string;
  bucket: string;
  key: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The access key id of the Authorization header. */
  accessKeyId: string | undefined;
}

export type S3Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/** S3's error document, as every S3 API error is sent. */
export function s3Error(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): S3Reply {
  return {
    status,
    headers: { 'content-type': 'application/xml', ...headers },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${randomUUID()}</RequestId><HostId>fake</HostId></Error>`,
  };
}

const MIN_PART = 5 * 1024 * 1024;

export class S3Fake {
  readonly requests: S3Request[] = [];
  readonly buckets = new Set<string>();
  readonly objects = new Map<string, { body: Buffer; headers: IncomingHttpHeaders }>();
  /** Multipart uploads begun and neither completed nor aborted, by upload id. */
  readonly uploads = new Map<string, { bucket: string; key: string; parts: Map<number, Buffer> }>();
  /** Access keys the fake knows; others get InvalidAccessKeyId. */
  readonly knownKeys = new Set<string>();
  /** Known keys whose policy allows nothing. */
  readonly deniedKeys = new Set<string>();
  /** Answers a request before the fake does, when it returns a reply. */
  script: (request: S3Request) => S3Reply | undefined = () => undefined;
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const [, bucket = '', ...rest] = url.pathname.split('/');
        const request: S3Request = {
          op: 'Other',
          method: req.method ?? '',
          bucket: decodeURIComponent(bucket),
          key: rest.map(decodeURIComponent).join('/'),
          query: url.searchParams,
          headers: req.headers,
          body: Buffer.concat(parts),
          accessKeyId: /Credential=([^/]+)\//.exec(req.headers.authorization ?? '')?.[1],
        };
        request.op = opOf(request);
        this.requests.push(request);
        const reply = this.script(request) ?? this.answer(request);
        if (reply === 'hang') return;
        res.writeHead(reply.status, reply.headers).end(reply.body ?? '');
      });
    });
  }

  static async start(options: { buckets?: string[]; keys?: string[] } = {}): Promise<S3Fake> {
    const fake = new S3Fake();
    for (const b of options.buckets ?? []) fake.buckets.add(b);
    for (const k of options.keys ?? ['FAKEKEY']) fake.knownKeys.add(k);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  ops(): S3Op[] {
    return this.requests.map((r) => r.op);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private answer(r: S3Request): S3Reply {
    if (r.accessKeyId === undefined || !this.knownKeys.has(r.accessKeyId))
      return s3Error(
        403,
        'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
      );
    if (r.headers['x-amz-security-token'] === 'expired')
      return s3Error(400, 'ExpiredToken', 'The provided token has expired.');
    if (this.deniedKeys.has(r.accessKeyId)) return s3Error(403, 'AccessDenied', 'Access Denied');
    if (!this.buckets.has(r.bucket))
      return s3Error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    const etag = { etag: `"${randomUUID().replaceAll('-', '')}"` };
    switch (r.op) {
      case 'PutObject':
        this.objects.set(`${r.bucket}/${r.key}`, { body: r.body, headers: r.headers });
        return { status: 200, headers: etag };
      case 'CreateMultipartUpload': {
        const id = randomUUID();
        this.uploads.set(id, { bucket: r.bucket, key: r.key, parts: new Map() });
        return xml(
          `<InitiateMultipartUploadResult><Bucket>${r.bucket}</Bucket><Key>${r.key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
        );
      }
      case 'UploadPart': {
        const upload = this.uploads.get(r.query.get('uploadId')!);
        if (!upload) return s3Error(404, 'NoSuchUpload', 'The specified upload does not exist.');
        upload.parts.set(Number(r.query.get('partNumber')), r.body);
        return { status: 200, headers: etag };
      }
      case 'CompleteMultipartUpload': {
        const id = r.query.get('uploadId')!;
        const upload = this.uploads.get(id);
        if (!upload) return s3Error(404, 'NoSuchUpload', 'The specified upload does not exist.');
        const numbers = [...upload.parts.keys()].sort((a, b) => a - b);
        const bodies = numbers.map((n) => upload.parts.get(n)!);
        if (bodies.slice(0, -1).some((b) => b.length < MIN_PART))
          return s3Error(
            400,
            'EntityTooSmall',
            'Your proposed upload is smaller than the minimum allowed object size.',
          );
        this.uploads.delete(id);
        this.objects.set(`${r.bucket}/${r.key}`, { body: Buffer.concat(bodies), headers: r.headers });
        return xml(
          `<CompleteMultipartUploadResult><Bucket>${r.bucket}</Bucket><Key>${r.key}</Key><ETag>${etag.etag}</ETag></CompleteMultipartUploadResult>`,
        );
      }
      case 'AbortMultipartUpload':
        this.uploads.delete(r.query.get('uploadId')!);
        return { status: 204 };
      case 'ListMultipartUploads':
        return xml(
          `<ListMultipartUploadsResult><Bucket>${r.bucket}</Bucket>${[...this.uploads]
            .filter(([, u]) => u.bucket === r.bucket)
            .map(([id, u]) => `<Upload><Key>${u.key}</Key><UploadId>${id}</UploadId></Upload>`)
            .join('')}</ListMultipartUploadsResult>`,
        );
      default:
        return s3Error(501, 'NotImplemented', `the fake does not do ${r.method} ${r.key}`);
    }
  }
}

function opOf(r: S3Request): S3Op {
  const q = r.query;
  if (r.method === 'PUT' && q.has('partNumber') && q.has('uploadId')) return 'UploadPart';
  if (r.method === 'PUT' && r.key !== '') return 'PutObject';
  if (r.method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
  if (r.method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
  if (r.method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
  if (r.method === 'GET' && q.has('uploads')) return 'ListMultipartUploads';
  return 'Other';
}

function xml(body: string): S3Reply {
  return {
    status: 200,
    headers: { 'content-type': 'application/xml' },
    body: `<?xml version="1.0" encoding="UTF-8"?>\n${body}`,
  };
}
