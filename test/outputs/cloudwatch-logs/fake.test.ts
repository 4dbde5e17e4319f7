import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DescribeLogStreamsCommand,
  type InputLogEvent,
  PutLogEventsCommand,
  PutRetentionPolicyCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { CloudWatchFake, CW_LIMITS } from '../../support/cloudwatch-fake.ts';
import './setup.ts';

/**
 * The fake itself, through the official client: it refuses what CloudWatch Logs refuses, in
 * CloudWatch's error shapes, so the output's tests against it mean something.
 */

let fake: CloudWatchFake;
let client: CloudWatchLogsClient;
const NOW = 1_700_000_000_000;

before(async () => {
  fake = await CloudWatchFake.start();
  client = new CloudWatchLogsClient({ endpoint: fake.url, maxAttempts: 1 });
});
afterEach(() => fake.reset());
after(async () => {
  client.destroy();
  await fake.close();
});

const put = (logEvents: InputLogEvent[], group = 'g', stream = 's') =>
  client.send(new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents }));

/** The SDK's error for a call: its name and message. */
async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
  return assert.fail('expected the call to be refused');
}

function ready(): void {
  fake.now = () => NOW;
  fake.addStream('g', 's');
}

describe('the CloudWatch Logs fake', () => {
  it('groups and streams: created once, ResourceAlreadyExistsException after, ResourceNotFoundException for a missing group', async () => {
    await client.send(
      new CreateLogGroupCommand({ logGroupName: 'g', logGroupClass: 'STANDARD', tags: { a: 'b' } }),
    );
    assert.match(
      await refusal(client.send(new CreateLogGroupCommand({ logGroupName: 'g' }))),
      /^ResourceAlreadyExistsException/,
    );
    assert.match(
      await refusal(client.send(new CreateLogStreamCommand({ logGroupName: 'nope', logStreamName: 's' }))),
      /^ResourceNotFoundException: The specified log group does not exist\.$/,
    );
    await client.send(new CreateLogStreamCommand({ logGroupName: 'g', logStreamName: 's' }));
    assert.match(
      await refusal(client.send(new CreateLogStreamCommand({ logGroupName: 'g', logStreamName: 's' }))),
      /^ResourceAlreadyExistsException: The specified log stream already exists$/,
    );
    const listed = await client.send(new DescribeLogStreamsCommand({ logGroupName: 'g' }));
    assert.deepEqual(
      listed.logStreams?.map((s) => s.logStreamName),
      ['s'],
    );
    assert.match(
      await refusal(client.send(new PutRetentionPolicyCommand({ logGroupName: 'g', retentionInDays: 10 }))),
      /^InvalidParameterException: 1 validation error detected: Value '10' at 'retentionInDays'/,
    );
    await client.send(new PutRetentionPolicyCommand({ logGroupName: 'g', retentionInDays: 14 }));
    assert.equal(fake.groups.get('g')!.retentionInDays, 14);
    assert.match(
      await refusal(client.send(new CreateLogGroupCommand({ logGroupName: 'bad name' }))),
      /^InvalidParameterException: .*'logGroupName' failed to satisfy constraint/,
    );
  });

  it('PutLogEvents refuses whole: a missing stream, order, a 24-hour span, sizes, counts, an empty message', async () => {
    ready();
    const at = (ms: number, message = 'm') => ({ timestamp: NOW + ms, message });
    assert.match(
      await refusal(put([at(0)], 'g', 'other')),
      /^ResourceNotFoundException: The specified log stream does not exist\.$/,
    );
    assert.match(
      await refusal(put([at(0)], 'other', 's')),
      /^ResourceNotFoundException: The specified log group does not exist\.$/,
    );
    assert.match(await refusal(put([at(5), at(1)])), /must be in chronological order/);
    assert.match(await refusal(put([at(-CW_LIMITS.spanMs - 1), at(0)])), /cannot span more than 24 hours/);
    await put([at(-CW_LIMITS.spanMs), at(0)]);
    const big = 'x'.repeat(CW_LIMITS.eventBytes - CW_LIMITS.overhead);
    await put([at(0, big)]);
    assert.match(
      await refusal(put([at(0, `${big}x`)])),
      /^InvalidParameterException: Log event too large: 1048577 bytes/,
    );
    assert.match(
      await refusal(put([at(0, big), at(0)])),
      /^InvalidParameterException: Upload too large: 1048603 bytes exceeds limit of 1048576$/,
    );
    const many = Array.from({ length: CW_LIMITS.events + 1 }, () => at(0));
    assert.match(
      await refusal(put(many)),
      /at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to 10000/,
    );
    await put(many.slice(1));
    assert.match(
      await refusal(put([at(0, '')])),
      /'logEvents.1.member.message' failed to satisfy constraint/,
    );
    assert.equal(fake.events('g', 's').length, 2 + 1 + CW_LIMITS.events);
  });

  it('PutLogEvents takes the call and reports events outside the time window in rejectedLogEventsInfo', async () => {
    ready();
    fake.groups.get('g')!.retentionInDays = 1;
    const day = 86_400_000;
    const hour = 3_600_000;
    // Kept, kept, kept (2 hours ahead exactly), too new, too new.
    const ahead = await put(
      [-1000, 0, 2 * hour, 2 * hour + 1, 3 * hour].map((ms) => ({
        timestamp: NOW + ms,
        message: String(ms),
      })),
    );
    assert.deepEqual(ahead.rejectedLogEventsInfo, { tooNewLogEventStartIndex: 3 });
    assert.deepEqual(fake.messages('g', 's'), ['-1000', '0', String(2 * hour)]);
    // Past the 1-day retention, kept.
    const past = await put([-day - 5, -day + 5].map((ms) => ({ timestamp: NOW + ms, message: String(ms) })));
    assert.deepEqual(past.rejectedLogEventsInfo, { expiredLogEventEndIndex: 1 });
    assert.deepEqual(fake.messages('g', 's'), [String(-day + 5), '-1000', '0', String(2 * hour)]);
    const old = await put([
      { timestamp: NOW - 14 * day - hour, message: 'older than 14 days' },
      { timestamp: NOW - 14 * day + hour, message: 'within 14 days, past the retention' },
    ]);
    assert.deepEqual(old.rejectedLogEventsInfo, { tooOldLogEventEndIndex: 1, expiredLogEventEndIndex: 2 });
    const none = await put([{ timestamp: NOW, message: 'now' }]);
    assert.equal(none.rejectedLogEventsInfo, undefined);
  });

  it('an unknown key, a denied key and a denied operation are refused as AWS refuses them', async () => {
    ready();
    fake.deniedOps.add('PutLogEvents');
    assert.match(
      await refusal(put([{ timestamp: NOW, message: 'm' }])),
      /^AccessDeniedException: User: .* is not authorized to perform: logs:PutLogEvents on resource: .*log-group:g:log-stream:s/,
    );
    fake.deniedOps.clear();
    fake.knownKeys.delete('FAKEKEY');
    try {
      assert.match(
        await refusal(put([{ timestamp: NOW, message: 'm' }])),
        /^UnrecognizedClientException: The security token included in the request is invalid\.$/,
      );
    } finally {
      fake.knownKeys.add('FAKEKEY');
    }
  });
});
