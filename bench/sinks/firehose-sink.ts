/**
 * A counting Amazon Data Firehose endpoint (JSON 1.1, `Firehose_20150804.PutRecordBatch`): it
 * answers every record as put and keeps nothing, reading no more of a request than its record
 * count needs — so the sink, not the output under test, is never the limit. (The tests' fake,
 * test/support/firehose-fake.ts, parses and stores every call and checks keys and limits; a
 * benchmark must not pay for that.)
 *
 *   body ─► each `"Data"` value (base64, no quotes inside) decoded ─► its lines counted
 *   answer: 200 {"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"…"},…]}
 *
 * Lines, not Firehose records, are what is counted: with `aggregation: simple` (Fluent Bit's
 * `simple_aggregation`) one Firehose record holds many log records, one per line; without,
 * each holds one, newline-terminated or not. Compressed records are not read. The records
 * carry no send time of their own, so there is no latency.
 *
 *   node bench/sinks/firehose-sink.ts --port 4573 [--cert cert.pem --key key.pem]
 */
import { serveAwsJson } from './aws-json.ts';
import { countLines, memo, SinkCounter, sinkArgs } from './stats.ts';

const counter = new SinkCounter();
const DATA = Buffer.from('"Data"');
const QUOTE = 0x22;

/** `{"RecordId":"…"},…` for n records, made once per n (at most 500: Firehose's limit). */
const responses = memo((n: number) =>
  Array.from({ length: n }, (_, i) => `{"RecordId":"bench-${i}"}`).join(','),
);

function putRecordBatch(body: Buffer): string {
  let records = 0;
  let lines = 0;
  for (let at = body.indexOf(DATA); at !== -1; ) {
    // `"Data":"<base64>"`, whatever the spacing around the colon.
    const from = body.indexOf(QUOTE, at + DATA.length) + 1;
    const to = body.indexOf(QUOTE, from);
    lines += countLines(Buffer.from(body.toString('latin1', from, to), 'base64'));
    records++;
    at = body.indexOf(DATA, to + 1);
  }
  counter.observe(undefined, lines);
  return `{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[${responses(records)}]}`;
}

serveAwsJson(counter, sinkArgs('4573'), 'Firehose_20150804', { PutRecordBatch: putRecordBatch });
