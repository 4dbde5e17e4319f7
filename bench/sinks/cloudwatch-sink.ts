/**
 * A counting CloudWatch Logs endpoint (JSON 1.1, `Logs_20140328.*`): it answers every
 * PutLogEvents as taken whole and keeps nothing, reading no more of a request than the count
 * and the latency need — so the sink, not the output under test, is never the limit. (The
 * tests' fake, test/support/cloudwatch-fake.ts, parses and stores every event and checks
 * CloudWatch's rules; a benchmark must not pay for that.)
 *
 *   PutLogEvents      each `"timestamp":<ms>` counted (a message holds none: its quotes are
 *                     escaped) and observed as the event's send time → {"nextSequenceToken":"…"}
 *   CreateLogGroup, CreateLogStream, PutRetentionPolicy → {}
 *   DescribeLogStreams                                  → {"logStreams":[]}
 *
 * Every answer carries `x-amzn-RequestId` (bench/sinks/aws-json.ts). The event time is the
 * record's, which the load generator stamped at send: latency = receipt − timestamp, to the
 * millisecond.
 *
 *   node bench/sinks/cloudwatch-sink.ts --port 4582 [--cert cert.pem --key key.pem]
 */
import { serveAwsJson } from './aws-json.ts';
import { SinkCounter, sinkArgs } from './stats.ts';

const counter = new SinkCounter();
const TIMESTAMP = Buffer.from('"timestamp"');
const ZERO = 0x30;
const NINE = 0x39;
let calls = 0;

function putLogEvents(body: Buffer): string {
  // Events of one call mostly share a few milliseconds: observed in runs of equal time.
  let last = -1;
  let pending = 0;
  const flush = () => {
    if (pending > 0) counter.observe(last / 1000, pending);
    pending = 0;
  };
  for (let at = body.indexOf(TIMESTAMP); at !== -1; at = body.indexOf(TIMESTAMP, at + TIMESTAMP.length)) {
    let i = at + TIMESTAMP.length;
    while (i < body.length && (body[i]! < ZERO || body[i]! > NINE)) i++;
    let ms = 0;
    for (; i < body.length && body[i]! >= ZERO && body[i]! <= NINE; i++) ms = ms * 10 + body[i]! - ZERO;
    if (ms !== last) flush();
    last = ms;
    pending++;
  }
  flush();
  return `{"nextSequenceToken":"${++calls}"}`;
}

const empty = () => '{}';
serveAwsJson(counter, sinkArgs('4582'), 'Logs_20140328', {
  PutLogEvents: putLogEvents,
  CreateLogGroup: empty,
  CreateLogStream: empty,
  PutRetentionPolicy: empty,
  DescribeLogStreams: () => '{"logStreams":[]}',
});
