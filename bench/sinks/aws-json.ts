/**
 * What the counting sinks of AWS's JSON 1.1 services (Firehose, CloudWatch Logs) share: `POST /`
 * with `X-Amz-Target: <Service_version>.<Operation>`, answers in `application/x-amz-json-1.1`,
 * each with an `x-amzn-RequestId` (Fluent Bit takes a 200 without one for a broken answer), and
 * errors as `{"__type": …, "message": …}` with `x-amzn-ErrorType`. Signatures are not checked.
 */
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { type SinkAddress, type SinkCounter, serveHttp } from './stats.ts';

/** An operation: the request's body → the 200 answer's JSON text. */
export type AwsJsonOperation = (body: Buffer) => string;

function answer(res: ServerResponse, status: number, text: string, errorType?: string): void {
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...(errorType === undefined ? {} : { 'x-amzn-errortype': errorType }),
  });
  res.end(text);
}

function fail(res: ServerResponse, status: number, type: string, message: string): void {
  answer(res, status, JSON.stringify({ __type: type, message }), type);
}

/** Serves `operations` of the service whose targets start with `prefix` (`Firehose_20150804`). */
export function serveAwsJson(
  counter: SinkCounter,
  address: SinkAddress,
  prefix: string,
  operations: Record<string, AwsJsonOperation>,
): void {
  serveHttp(
    counter,
    address,
    (req, res, body) => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = target.startsWith(`${prefix}.`)
        ? operations[target.slice(prefix.length + 1)]
        : undefined;
      if (operation === undefined)
        fail(res, 400, 'UnknownOperationException', `the bench sink does not do ${target || 'that'}`);
      else answer(res, 200, operation(body));
    },
    (res, err) => fail(res, 400, 'SerializationException', `bench sink: ${String(err)}`),
  );
}
