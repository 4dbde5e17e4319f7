/**
 * A counting S3 endpoint (path-style): it answers every upload as stored and keeps nothing but
 * the parts of multipart uploads not yet completed, reading no more of an object than its
 * record count needs — so the sink, not the output under test, is never the limit. (The
 * tests' fake, test/support/s3-fake.ts, and s3rver keep every object and check credentials;
 * a benchmark must not pay for that.)
 *
 *   PUT /bucket/key                          PutObject: the object, counted
 *   POST /bucket/key?uploads                 CreateMultipartUpload: an UploadId; Content-Encoding kept
 *   PUT /bucket/key?partNumber=N&uploadId=U  UploadPart: the part kept
 *   POST /bucket/key?uploadId=U              CompleteMultipartUpload: the parts joined, counted
 *   DELETE /bucket/key?uploadId=U            AbortMultipartUpload: the parts dropped
 *   HEAD /bucket                             HeadBucket: 200
 *
 * An object is counted once it is complete: its body decompressed by Content-Encoding (gzip,
 * zstd, or none) and its lines counted (native newline search; a last line without `\n`
 * counts too) — one record per line, as `format: json_lines` and `plain` write them.
 * Signatures and checksums are not checked. The records carry no send time of their own, so
 * there is no latency.
 *
 *   node bench/sinks/s3-sink.ts --port 9000
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { countLines, SinkCounter, serveHttp, sinkArgs } from './stats.ts';

const address = sinkArgs('9000');
const counter = new SinkCounter();
/** Whatever the ETag, the S3 output and lib-storage only pass it on. */
const ETAG = '"0123456789abcdef0123456789abcdef"';

/** Multipart uploads begun and not yet completed or aborted, by UploadId. */
const uploads = new Map<string, { encoding: string | undefined; parts: Map<number, Buffer> }>();
let nextUpload = 0;

function decompress(body: Buffer, encoding: string | undefined): Buffer {
  if (encoding === undefined || encoding === 'identity') return body;
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'zstd') return zstdDecompressSync(body);
  throw new Error(`Content-Encoding ${encoding}: not gzip, zstd or none`);
}

function countObject(body: Buffer, encoding: string | undefined): void {
  counter.observe(undefined, countLines(decompress(body, encoding)));
}

function answer(res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    ...headers,
    ...(body === '' ? {} : { 'content-type': 'application/xml' }),
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

const xml = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  answer(res, status, xml(`<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`));
}

function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  const url = new URL(req.url ?? '/', 'http://sink');
  const q = url.searchParams;
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = rest.join('/');
  /** A 200 with `<tag><Bucket>…</Bucket><Key>…</Key>inner</tag>`, as CreateMultipartUpload and CompleteMultipartUpload answer. */
  const result = (tag: string, inner: string) =>
    answer(
      res,
      200,
      xml(
        `<${tag}><Bucket>${escapeXml(bucket)}</Bucket><Key>${escapeXml(decodeURIComponent(key))}</Key>${inner}</${tag}>`,
      ),
    );
  const method = req.method ?? 'GET';
  const encoding = req.headers['content-encoding'];
  const uploadId = q.get('uploadId');
  const upload = uploadId === null ? undefined : uploads.get(uploadId);
  if (uploadId !== null && upload === undefined)
    s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
  else if (method === 'PUT' && upload !== undefined) {
    upload.parts.set(Number(q.get('partNumber')), body);
    answer(res, 200, '', { etag: ETAG });
  } else if (method === 'PUT' && key !== '') {
    countObject(body, encoding);
    answer(res, 200, '', { etag: ETAG });
  } else if (method === 'POST' && q.has('uploads')) {
    const id = `bench-${++nextUpload}`;
    uploads.set(id, { encoding, parts: new Map() });
    result('InitiateMultipartUploadResult', `<UploadId>${id}</UploadId>`);
  } else if (method === 'POST' && upload !== undefined) {
    uploads.delete(uploadId!);
    const parts = [...upload.parts].sort(([a], [b]) => a - b).map(([, part]) => part);
    countObject(Buffer.concat(parts), upload.encoding);
    result('CompleteMultipartUploadResult', `<ETag>${ETAG}</ETag>`);
  } else if (method === 'DELETE' && upload !== undefined) {
    uploads.delete(uploadId!);
    answer(res, 204);
  } else if (method === 'HEAD' && key === '') answer(res, 200);
  else
    s3Error(res, 501, 'NotImplemented', `the bench sink does not do ${method} ${url.pathname}${url.search}`);
}

serveHttp(counter, address, handle, (res, err) =>
  s3Error(res, 400, 'InvalidRequest', `bench sink: ${String(err)}`),
);
