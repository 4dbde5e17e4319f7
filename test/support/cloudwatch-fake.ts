import type { IncomingHttpHeaders } from 'node:http';
import {
  type AwsJsonReply,
  AwsJsonServer,
  answerOf,
  awsJsonError,
  awsJsonOk,
  signedKeyId,
  type TlsFiles,
} from './aws-json-fake.ts';

/**
 * Amazon CloudWatch Logs has no emulator: this fake speaks its JSON 1.1 protocol as the
 * official SDK uses it (`POST /`, `X-Amz-Target: Logs_20140328.<Operation>`) for
 * CreateLogGroup, CreateLogStream, PutRetentionPolicy, DescribeLogStreams and PutLogEvents, and
 * answers as CloudWatch does:
 *
 *   no SigV4 Authorization header (service logs)  400 MissingAuthenticationTokenException
 *   an access key it does not know                400 UnrecognizedClientException
 *   a denied key or action                        400 AccessDeniedException
 *   a name or value outside the API's rules       400 InvalidParameterException (validation)
 *   a group / stream that does not exist          400 ResourceNotFoundException
 *   a group / stream that exists (Create…)        400 ResourceAlreadyExistsException
 *   PutLogEvents, refused whole (400 InvalidParameterException):
 *     more than 10,000 events, an empty message    (validation errors)
 *     an event over 1,048,576 bytes (message + 26) Log event too large: …
 *     more than 1,048,576 bytes (Σ message + 26)   Upload too large: …
 *     events out of time order                     …must be in chronological order.
 *     first to last event more than 24 hours       …cannot span more than 24 hours.
 *   PutLogEvents, per event in a 200 answer (rejectedLogEventsInfo; the others stored):
 *     more than 2 hours ahead of the fake's clock  tooNewLogEventStartIndex (inclusive)
 *     more than 14 days before it                  tooOldLogEventEndIndex (exclusive)
 *     older than the group's retention             expiredLogEventEndIndex (exclusive)
 *
 * `script` answers a call first (throttling, a 500, a hang). Every call is logged with what it
 * asked and what it was answered, so a test can check none broke a rule.
 */

export const CW_LIMITS = {
  events: 10_000,
  callBytes: 1_048_576,
  eventBytes: 1_048_576,
  overhead: 26,
  spanMs: 24 * 3_600_000,
  tooNewMs: 2 * 3_600_000,
  tooOldMs: 14 * 24 * 3_600_000,
} as const;

export const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

export interface StoredEvent {
  timestamp: number;
  message: string;
}

export interface FakeGroup {
  retentionInDays: number | undefined;
  logGroupClass: string;
  tags: Record<string, string>;
  /** Each stream's events in the order the calls brought them. */
  streams: Map<string, StoredEvent[]>;
}

export interface CloudWatchCall {
  /** The operation: `PutLogEvents`, `CreateLogGroup`… */
  op: string;
  request: Record<string, unknown>;
  accessKeyId: string | null;
  headers: IncomingHttpHeaders;
  /** PutLogEvents: the events sent, and their bytes as CloudWatch counts them. */
  events: StoredEvent[];
  bytes: number;
  /** `200`, `hang`, or the error type. */
  answer: string;
}

export const THROTTLED = awsJsonError(400, 'ThrottlingException', 'Rate exceeded');
export const UNAVAILABLE = awsJsonError(
  500,
  'ServiceUnavailableException',
  'The server failed to fulfill the request. Please try again.',
);

const GROUP_PATTERN = /^[.\-_/#A-Za-z0-9]+$/;
const STREAM_PATTERN = /^[^:*]*$/;

const invalid = (message: string) => awsJsonError(400, 'InvalidParameterException', message);
const validation = (value: string, at: string, constraint: string) =>
  invalid(
    `1 validation error detected: Value '${value}' at '${at}' failed to satisfy constraint: ${constraint}`,
  );

export class CloudWatchFake {
  readonly calls: CloudWatchCall[] = [];
  readonly groups = new Map<string, FakeGroup>();
  readonly knownKeys = new Set<string>();
  readonly deniedKeys = new Set<string>();
  /** Operations no key may call (`CreateLogGroup`…): AccessDeniedException. */
  readonly deniedOps = new Set<string>();
  /** Answers a call before the fake does, when it returns a reply. */
  script: (call: CloudWatchCall) => AwsJsonReply | undefined = () => undefined;
  /** The fake's clock, in milliseconds: what "too new" and "too old" are measured from. */
  now: () => number = Date.now;
  private server: AwsJsonServer | undefined;

  static async start(options: { keys?: string[]; tls?: TlsFiles } = {}): Promise<CloudWatchFake> {
    const fake = new CloudWatchFake();
    for (const k of options.keys ?? ['FAKEKEY']) fake.knownKeys.add(k);
    fake.server = await AwsJsonServer.start(
      (method, headers, body) => fake.handle(method, headers, body),
      options.tls,
    );
    return fake;
  }

  get url(): string {
    return this.server!.url;
  }

  get port(): number {
    return this.server!.port;
  }

  addGroup(name: string, retentionInDays?: number): FakeGroup {
    const group: FakeGroup = { retentionInDays, logGroupClass: 'STANDARD', tags: {}, streams: new Map() };
    this.groups.set(name, group);
    return group;
  }

  addStream(group: string, stream: string): void {
    (this.groups.get(group) ?? this.addGroup(group)).streams.set(stream, []);
  }

  /**
   * A stream's events as CloudWatch gives them back (GetLogEvents): in time order, events of
   * one millisecond in the order they were taken. Calls may come in any order; only the
   * events within one must be sorted.
   */
  events(group: string, stream: string): StoredEvent[] {
    const taken = this.groups.get(group)?.streams.get(stream) ?? [];
    return [...taken].sort((a, b) => a.timestamp - b.timestamp);
  }

  messages(group: string, stream: string): string[] {
    return this.events(group, stream).map((e) => e.message);
  }

  /** The calls of one operation. */
  callsOf(op: string): CloudWatchCall[] {
    return this.calls.filter((c) => c.op === op);
  }

  /** Forgets calls, groups and scripts. */
  reset(): void {
    this.calls.length = 0;
    this.groups.clear();
    this.deniedKeys.clear();
    this.deniedOps.clear();
    this.script = () => undefined;
    this.now = Date.now;
  }

  close(): Promise<void> {
    return this.server?.close() ?? Promise.resolve();
  }

  private handle(method: string, headers: IncomingHttpHeaders, body: Buffer): AwsJsonReply {
    const target = String(headers['x-amz-target'] ?? '');
    const call: CloudWatchCall = {
      op: target.startsWith('Logs_20140328.') ? target.slice('Logs_20140328.'.length) : target,
      request: {},
      accessKeyId: signedKeyId(headers, 'logs'),
      headers,
      events: [],
      bytes: 0,
      answer: '',
    };
    const reply = this.answer(method, call, body);
    call.answer = answerOf(reply);
    return reply;
  }

  private answer(method: string, call: CloudWatchCall, body: Buffer): AwsJsonReply {
    if (method !== 'POST')
      return awsJsonError(404, 'UnknownOperationException', `${method} is not an operation`);
    if (call.accessKeyId === null)
      return awsJsonError(400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
    if (!String(call.headers['content-type']).startsWith('application/x-amz-json-1.1'))
      return awsJsonError(400, 'SerializationException', 'expected application/x-amz-json-1.1');
    try {
      call.request = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      return awsJsonError(
        400,
        'SerializationException',
        'Start of structure or map found where not expected.',
      );
    }
    if (call.op === 'PutLogEvents') {
      const events = Array.isArray(call.request.logEvents) ? (call.request.logEvents as StoredEvent[]) : [];
      call.events = events;
      call.bytes = events.reduce(
        (n, e) => n + Buffer.byteLength(String(e.message ?? '')) + CW_LIMITS.overhead,
        0,
      );
    }
    this.calls.push(call);
    const scripted = this.script(call);
    if (scripted) return scripted;
    if (!this.knownKeys.has(call.accessKeyId))
      return awsJsonError(
        400,
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      );
    const group = String(call.request.logGroupName ?? '');
    const stream = String(call.request.logStreamName ?? '');
    if (this.deniedKeys.has(call.accessKeyId) || this.deniedOps.has(call.op))
      return awsJsonError(
        400,
        'AccessDeniedException',
        `User: arn:aws:iam::123456789012:user/estuary is not authorized to perform: logs:${call.op} on resource: arn:aws:logs:eu-west-1:123456789012:log-group:${group}${stream ? `:log-stream:${stream}` : ''} because no identity-based policy allows the logs:${call.op} action`,
      );
    const badGroup = this.checkName(group, 'logGroupName', GROUP_PATTERN, '[\\.\\-_/#A-Za-z0-9]+');
    switch (call.op) {
      case 'CreateLogGroup':
        return badGroup ?? this.createGroup(group, call.request);
      case 'CreateLogStream':
        return (
          badGroup ??
          this.checkName(stream, 'logStreamName', STREAM_PATTERN, '[^:*]*') ??
          this.createStream(group, stream)
        );
      case 'PutRetentionPolicy':
        return badGroup ?? this.putRetention(group, call.request.retentionInDays);
      case 'DescribeLogStreams':
        return badGroup ?? this.describeStreams(group, call.request.logStreamNamePrefix);
      case 'PutLogEvents':
        return (
          badGroup ??
          this.checkName(stream, 'logStreamName', STREAM_PATTERN, '[^:*]*') ??
          this.putLogEvents(group, stream, call.events)
        );
      default:
        return awsJsonError(400, 'UnknownOperationException', `the fake does not do ${call.op}`);
    }
  }

  private checkName(name: string, at: string, pattern: RegExp, source: string): AwsJsonReply | undefined {
    if (name.length < 1 || name.length > 512)
      return validation(
        name,
        at,
        `Member must have length ${name.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 512'}`,
      );
    if (!pattern.test(name))
      return validation(name, at, `Member must satisfy regular expression pattern: ${source}`);
    return undefined;
  }

  private createGroup(name: string, request: Record<string, unknown>): AwsJsonReply {
    const cls = request.logGroupClass === undefined ? 'STANDARD' : String(request.logGroupClass);
    if (!['STANDARD', 'INFREQUENT_ACCESS', 'DELIVERY'].includes(cls))
      return validation(
        cls,
        'logGroupClass',
        'Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]',
      );
    if (this.groups.has(name))
      return awsJsonError(400, 'ResourceAlreadyExistsException', 'The specified log group already exists');
    const group = this.addGroup(name);
    group.logGroupClass = cls;
    group.tags = (request.tags as Record<string, string> | undefined) ?? {};
    return awsJsonOk({});
  }

  private createStream(groupName: string, stream: string): AwsJsonReply {
    const group = this.groups.get(groupName);
    if (!group)
      return awsJsonError(400, 'ResourceNotFoundException', 'The specified log group does not exist.');
    if (group.streams.has(stream))
      return awsJsonError(400, 'ResourceAlreadyExistsException', 'The specified log stream already exists');
    group.streams.set(stream, []);
    return awsJsonOk({});
  }

  private putRetention(groupName: string, days: unknown): AwsJsonReply {
    if (typeof days !== 'number' || !RETENTION_DAYS.includes(days))
      return validation(
        String(days),
        'retentionInDays',
        `Member must satisfy enum value set: [${RETENTION_DAYS.join(', ')}]`,
      );
    const group = this.groups.get(groupName);
    if (!group)
      return awsJsonError(400, 'ResourceNotFoundException', 'The specified log group does not exist.');
    group.retentionInDays = days;
    return awsJsonOk({});
  }

  private describeStreams(groupName: string, prefix: unknown): AwsJsonReply {
    const group = this.groups.get(groupName);
    if (!group)
      return awsJsonError(400, 'ResourceNotFoundException', 'The specified log group does not exist.');
    const logStreams = [...group.streams.keys()]
      .filter((name) => typeof prefix !== 'string' || name.startsWith(prefix))
      .map((logStreamName) => ({ logStreamName, creationTime: 0, storedBytes: 0 }));
    return awsJsonOk({ logStreams });
  }

  private putLogEvents(groupName: string, stream: string, events: StoredEvent[]): AwsJsonReply {
    if (events.length > CW_LIMITS.events)
      return validation(
        '[...]',
        'logEvents',
        `Member must have length less than or equal to ${CW_LIMITS.events}`,
      );
    if (events.length === 0)
      return validation('[]', 'logEvents', 'Member must have length greater than or equal to 1');
    for (const [i, e] of events.entries()) {
      if (typeof e.message !== 'string' || e.message.length === 0)
        return validation(
          '',
          `logEvents.${i + 1}.member.message`,
          'Member must have length greater than or equal to 1',
        );
      if (typeof e.timestamp !== 'number' || !Number.isInteger(e.timestamp) || e.timestamp < 0)
        return validation(
          String(e.timestamp),
          `logEvents.${i + 1}.member.timestamp`,
          'Member must be a non-negative long',
        );
    }
    const group = this.groups.get(groupName);
    if (!group)
      return awsJsonError(400, 'ResourceNotFoundException', 'The specified log group does not exist.');
    const stored = group.streams.get(stream);
    if (!stored)
      return awsJsonError(400, 'ResourceNotFoundException', 'The specified log stream does not exist.');
    let total = 0;
    for (const e of events) {
      const size = Buffer.byteLength(e.message) + CW_LIMITS.overhead;
      if (size > CW_LIMITS.eventBytes)
        return invalid(`Log event too large: ${size} bytes exceeds limit of ${CW_LIMITS.eventBytes}`);
      total += size;
    }
    if (total > CW_LIMITS.callBytes)
      return invalid(`Upload too large: ${total} bytes exceeds limit of ${CW_LIMITS.callBytes}`);
    for (let i = 1; i < events.length; i++)
      if (events[i]!.timestamp < events[i - 1]!.timestamp)
        return invalid('Log events in a single PutLogEvents request must be in chronological order.');
    if (events[events.length - 1]!.timestamp - events[0]!.timestamp > CW_LIMITS.spanMs)
      return invalid(
        'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.',
      );
    const now = this.now();
    const tooOld = events.filter((e) => e.timestamp < now - CW_LIMITS.tooOldMs).length;
    const retention = group.retentionInDays;
    const expired =
      retention === undefined ? 0 : events.filter((e) => e.timestamp < now - retention * 86_400_000).length;
    let tooNew = events.findIndex((e) => e.timestamp > now + CW_LIMITS.tooNewMs);
    if (tooNew < 0) tooNew = events.length;
    const kept = Math.max(tooOld, expired);
    for (const e of events.slice(kept, tooNew)) stored.push({ timestamp: e.timestamp, message: e.message });
    const info = {
      ...(tooOld > 0 && { tooOldLogEventEndIndex: tooOld }),
      ...(expired > 0 && { expiredLogEventEndIndex: expired }),
      ...(tooNew < events.length && { tooNewLogEventStartIndex: tooNew }),
    };
    return awsJsonOk({
      nextSequenceToken: String(now),
      ...(Object.keys(info).length > 0 && { rejectedLogEventsInfo: info }),
    });
  }
}
