import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { type AwsJsonReply, AwsJsonServer, answerOf, awsJsonError } from './aws-json-fake.ts';

/**
 * Amazon Kinesis Data Firehose has no emulator: this fake speaks its JSON 1.1 protocol as the
 * official SDK uses it (`POST /`, `X-Amz-Target: Firehose_20150804.PutRecordBatch`,
 * `application/x-amz-json-1.1`, base64 record data) and answers as Firehose does:
 *
 *   no SigV4 Authorization header           400 MissingAuthenticationTokenException
 *   an access key it does not know          400 UnrecognizedClientException
 *   a known key whose policy allows nothing 400 AccessDeniedException
 *   a stream that does not exist            400 ResourceNotFoundException
 *   more than 500 records                   400 ValidationException (…at 'records'…)
 *   a record over 1,024,000 bytes           400 ValidationException (…'records.N.member.data'…)
 *   more than 4 MiB of data in one call     400 InvalidArgumentException: Records size exceeds 4 MiB limit
 *   a record `recordFailure` picks          ErrorCode in its RequestResponses entry, FailedPutCount
 *
 * `script` answers a call first (throttling, a 500, a hang). Stored records are kept per
 * stream; every call is logged with its size so a test can check none was over a limit.
 */

export const LIMITS = { records: 500, recordBytes: 1_024_000, callBytes: 4 * 1024 * 1024 } as const;

export interface FirehoseCall {
  target: string;
  stream: string;
  records: Buffer[];
  bytes: number;
  accessKeyId: string | undefined;
  headers: IncomingHttpHeaders;
  /** What the fake answered: 200, or the error type. */
  answer: string;
}

export type FirehoseReply = AwsJsonReply;

/** Firehose's JSON error shape (JSON 1.1's). */
export const firehoseError = awsJsonError;

/** A per-record failure as Firehose reports it in RequestResponses. */
export interface RecordError {
  ErrorCode: string;
  ErrorMessage: string;
}

export const SLOW_DOWN: RecordError = {
  ErrorCode: 'ServiceUnavailableException',
  ErrorMessage: 'Slow down.',
};

export class FirehoseFake {
  readonly calls: FirehoseCall[] = [];
  /** Records stored, by stream, in the order Firehose took them. */
  readonly stored = new Map<string, Buffer[]>();
  readonly knownKeys = new Set<string>();
  readonly deniedKeys = new Set<string>();
  /** Answers a call before the fake does, when it returns a reply. */
  script: (call: FirehoseCall) => FirehoseReply | undefined = () => undefined;
  /** Fails one record of a call the fake otherwise takes. */
  recordFailure: (data: Buffer, index: number, call: FirehoseCall) => RecordError | undefined = () =>
    undefined;
  private server: AwsJsonServer | undefined;

  static async start(options: { streams?: string[]; keys?: string[] } = {}): Promise<FirehoseFake> {
    const fake = new FirehoseFake();
    for (const s of options.streams ?? []) fake.stored.set(s, []);
    for (const k of options.keys ?? ['FAKEKEY']) fake.knownKeys.add(k);
    fake.server = await AwsJsonServer.start((method, headers, body) => fake.handle(method, headers, body));
    return fake;
  }

  get url(): string {
    return this.server!.url;
  }

  /** Every record of a stream, in order. */
  records(stream: string): Buffer[] {
    return this.stored.get(stream) ?? [];
  }

  reset(): void {
    this.calls.length = 0;
    for (const records of this.stored.values()) records.length = 0;
    this.script = () => undefined;
    this.recordFailure = () => undefined;
  }

  close(): Promise<void> {
    return this.server?.close() ?? Promise.resolve();
  }

  private handle(method: string, headers: IncomingHttpHeaders, body: Buffer): FirehoseReply {
    const target = String(headers['x-amz-target'] ?? '');
    const call: FirehoseCall = {
      target,
      stream: '',
      records: [],
      bytes: 0,
      accessKeyId: /Credential=([^/]+)\//.exec(headers.authorization ?? '')?.[1],
      headers,
      answer: '',
    };
    const reply = this.answer(method, call, body);
    call.answer = answerOf(reply);
    return reply;
  }

  private answer(method: string, call: FirehoseCall, body: Buffer): FirehoseReply {
    if (method !== 'POST')
      return firehoseError(404, 'UnknownOperationException', `${method} is not an operation`);
    const auth = String(call.headers.authorization ?? '');
    if (
      !/^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/[^/]+\/firehose\/aws4_request, ?SignedHeaders=[^,]+, ?Signature=[0-9a-f]{64}$/.test(
        auth,
      )
    )
      return firehoseError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    if (call.target !== 'Firehose_20150804.PutRecordBatch')
      return firehoseError(400, 'UnknownOperationException', `the fake does not do ${call.target}`);
    if (!String(call.headers['content-type']).startsWith('application/x-amz-json-1.1'))
      return firehoseError(400, 'SerializationException', 'expected application/x-amz-json-1.1');
    let request: { DeliveryStreamName?: unknown; Records?: unknown };
    try {
      request = JSON.parse(body.toString('utf8')) as typeof request;
    } catch {
      return firehoseError(
        400,
        'SerializationException',
        'Start of structure or map found where not expected.',
      );
    }
    call.stream = String(request.DeliveryStreamName ?? '');
    const records = Array.isArray(request.Records) ? (request.Records as { Data?: unknown }[]) : [];
    call.records = records.map((r) => Buffer.from(String(r.Data ?? ''), 'base64'));
    call.bytes = call.records.reduce((n, r) => n + r.length, 0);
    this.calls.push(call);
    const scripted = this.script(call);
    if (scripted) return scripted;
    if (call.accessKeyId === undefined || !this.knownKeys.has(call.accessKeyId))
      return firehoseError(
        400,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    if (this.deniedKeys.has(call.accessKeyId))
      return firehoseError(
        400,
        'AccessDeniedException',
        `User: arn:aws:iam::123456789012:user/test is not authorized to perform: firehose:PutRecordBatch on resource: ${call.stream}`,
      );
    const violations: string[] = [];
    if (call.records.length > LIMITS.records)
      violations.push(
        `Value '[...]' at 'records' failed to satisfy constraint: Member must have length less than or equal to ${LIMITS.records}`,
      );
    if (call.records.length === 0)
      violations.push(
        `Value '[]' at 'records' failed to satisfy constraint: Member must have length greater than or equal to 1`,
      );
    for (const [i, data] of call.records.entries()) {
      if (data.length > LIMITS.recordBytes)
        violations.push(
          `Value 'java.nio.HeapByteBuffer[pos=0 lim=${data.length} cap=${data.length}]' at 'records.${i + 1}.member.data' failed to satisfy constraint: Member must have length less than or equal to ${LIMITS.recordBytes}`,
        );
    }
    if (violations.length > 0)
      return firehoseError(
        400,
        'ValidationException',
        `${violations.length} validation error${violations.length > 1 ? 's' : ''} detected: ${violations.join('; ')}`,
      );
    if (call.bytes > LIMITS.callBytes)
      return firehoseError(400, 'InvalidArgumentException', 'Records size exceeds 4 MiB limit');
    const stored = this.stored.get(call.stream);
    if (!stored)
      return firehoseError(
        400,
        'ResourceNotFoundException',
        `Firehose ${call.stream} under account 123456789012 not found.`,
      );
    let failed = 0;
    const responses = call.records.map((data, i) => {
      const failure = this.recordFailure(data, i, call);
      if (failure) {
        failed += 1;
        return failure;
      }
      stored.push(data);
      return { RecordId: randomBytes(24).toString('base64') };
    });
    return {
      status: 200,
      headers: { 'content-type': 'application/x-amz-json-1.1' },
      body: JSON.stringify({ FailedPutCount: failed, Encrypted: false, RequestResponses: responses }),
    };
  }
}
