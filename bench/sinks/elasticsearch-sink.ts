/**
 * A counting `_bulk` endpoint: it answers every document as created and keeps nothing, reading
 * no more of a request than the count and the latency need — so the sink, not the output
 * under test, is never the limit. (The tests' fake, test/support/elasticsearch-fake.ts, parses
 * every document to check mappings; a benchmark must not pay for that.)
 *
 *   body ─► lines (native newline search) ─► odd non-empty lines: actions (counted, op read
 *        from `{"<op>"`) ─► even lines: documents, scanned for `"@timestamp":"…"` only
 *   answer: 200 {"took","errors":false,"items":[{"<op>":{"result":"created","status":201}},…]}
 *           with X-Elastic-Product: Elasticsearch, which the official client checks on every 2xx
 *
 * The Elasticsearch output reads only `items` (one per action, in order) and each item's
 * `status` and `error` (src/outputs/elasticsearch/client.ts). `GET /` and `_index_template`
 * are answered too, so a config with a template starts.
 *
 *   node bench/sinks/elasticsearch-sink.ts --port 9200
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { EventTime } from '../../src/core/event-time.ts';
import { memo, SinkCounter, serveHttp, sinkArgs } from './stats.ts';

const address = sinkArgs('9200');
const counter = new SinkCounter();
const NEWLINE = 0x0a;
const TIMESTAMP = Buffer.from('"@timestamp":"');
const QUOTE = 0x22;

/** Per op, the item of a success; the output compares `status` only. */
const item = memo((op: string) => JSON.stringify({ [op]: { result: 'created', status: 201 } }));

/**
 * Counts the actions of a `_bulk` body and observes each document's `@timestamp` (the event
 * time the load generator stamped); consecutive documents of one message share a time, so
 * a timestamp is parsed only when it differs from the one before.
 */
function bulk(body: Buffer): string[] {
  const items: string[] = [];
  let lastStamp = '';
  let lastTime: EventTime | undefined;
  let pending = 0;
  const flush = () => {
    if (pending > 0) counter.observe(lastTime, pending);
    pending = 0;
  };
  let isAction = true;
  for (let start = 0; start < body.length; ) {
    let end = body.indexOf(NEWLINE, start);
    if (end === -1) end = body.length;
    if (end > start) {
      if (isAction) {
        // `{"create":{…}}`: the op is the first key.
        const close = body.indexOf(QUOTE, start + 2);
        items.push(item(body.toString('latin1', start + 2, close)));
      } else {
        const at = body.indexOf(TIMESTAMP, start);
        let time: EventTime | undefined;
        if (at !== -1 && at < end) {
          const from = at + TIMESTAMP.length;
          const stamp = body.toString('latin1', from, body.indexOf(QUOTE, from));
          if (stamp === lastStamp) time = lastTime;
          else {
            time = EventTime.parseIso(stamp);
            lastStamp = stamp;
          }
        }
        if (time !== lastTime) flush();
        lastTime = time;
        pending++;
      }
      isAction = !isAction;
    }
    start = end + 1;
  }
  flush();
  return items;
}

function answer(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-elastic-product': 'Elasticsearch',
  });
  res.end(text);
}

function handle(req: IncomingMessage, res: ServerResponse, raw: Buffer): void {
  const path = new URL(req.url ?? '/', 'http://sink').pathname;
  const method = req.method ?? 'GET';
  if (path.endsWith('/_bulk') && (method === 'POST' || method === 'PUT')) {
    const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
    const started = Date.now();
    const items = bulk(body);
    answer(res, 200, `{"took":${Date.now() - started},"errors":false,"items":[${items.join(',')}]}`);
  } else if (path.startsWith('/_index_template/')) {
    // "There is none yet" to HEAD, then the PUT is acknowledged.
    if (method === 'HEAD') answer(res, 404, '');
    else answer(res, 200, '{"acknowledged":true}');
  } else if (path === '/') {
    answer(
      res,
      200,
      JSON.stringify({ name: 'bench-sink', version: { number: '9.1.0' }, tagline: 'You Know, for Search' }),
    );
  } else answer(res, 404, JSON.stringify({ error: `no route for ${method} ${path}`, status: 404 }));
}

serveHttp(counter, address, handle, (res, err) =>
  answer(res, 400, JSON.stringify({ error: String(err), status: 400 })),
);
