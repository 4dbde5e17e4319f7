/**
 * The webhook example plugin, tested as its author would: only through estuary/plugin/testkit.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildOutput,
  httpStatus,
  makeTestChunk,
  outputConformance,
  type Reply,
  ScriptedHttpSink,
  type SeenRequest,
} from 'estuary/plugin/testkit';
import webhook from '../../examples/plugins/webhook-output/index.ts';

outputConformance({
  plugin: webhook,
  type: 'webhook',
  options: (url, requestTimeout) => ({ url, timeout: requestTimeout }),
  notApplicable: {
    '413':
      'one POST per chunk: chunk_limit_size keeps POSTs under the receiver limit; a 413 dead-letters the chunk',
  },
});

describe('webhook output', () => {
  /** A webhook pointed at a sink answering with `reply`; the requests it saw. */
  async function against(reply: (request: SeenRequest) => Reply, options = {}) {
    const sink = await ScriptedHttpSink.start(reply);
    const out = await buildOutput(webhook, 'webhook', { url: `${sink.url}/hook`, ...options });
    return {
      out,
      sink,
      [Symbol.asyncDispose]: async () => {
        await out.stop();
        await sink.close();
      },
    };
  }

  it('POSTs a chunk as one JSON array with the configured headers, and counts it', async () => {
    await using w = await against(() => ({ status: 204 }), {
      headers: { 'x-source': 'estuary' },
      bearer_token: 's3cret',
    });
    const outcome = await w.out.write([
      { msg: 'a', n: 1 },
      { msg: 'b', big: 12345678901234567890n },
    ]);
    assert.equal(outcome.kind, 'ok');
    const [request] = w.sink.requests;
    assert.equal(w.sink.requests.length, 1);
    assert.equal(request!.method, 'POST');
    assert.equal(request!.url, '/hook');
    assert.equal(request!.headers['content-type'], 'application/json');
    assert.equal(request!.headers['x-source'], 'estuary');
    assert.equal(request!.headers.authorization, 'Bearer s3cret');
    assert.equal(
      request!.text.replace(/\s/g, ''),
      '[{"msg":"a","n":1},{"msg":"b","big":12345678901234567890}]',
    );
    assert.match(
      await w.out.metrics(),
      /estuary_plugin_webhook_posts_total\{plugin_id="webhook.test",status="204"\} 1/,
    );
  });

  it('format json keeps tag and time; gzip compresses the body', async () => {
    const sink = await ScriptedHttpSink.start(() => ({ status: 200 }));
    // The sink gunzips a body sent with content-encoding gzip (and fails on one that is not).
    const out = await buildOutput(webhook, 'webhook', { url: sink.url, format: 'json', gzip: true });
    try {
      const chunk = makeTestChunk([{ msg: 'x' }], { tag: 'app.web' });
      assert.equal((await out.write(chunk)).kind, 'ok');
      const [request] = sink.requests;
      assert.equal(request!.headers['content-encoding'], 'gzip');
      const [entry] = JSON.parse(request!.text) as { tag: string; time: string; record: unknown }[];
      assert.equal(entry!.tag, 'app.web');
      assert.match(entry!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      assert.deepEqual(entry!.record, { msg: 'x' });
    } finally {
      await out.stop();
      await sink.close();
    }
  });

  for (const [status, kind] of [
    [400, 'reject'],
    [422, 'reject'],
    [408, 'retry'],
    [502, 'retry'],
    [401, 'halt'],
    [403, 'halt'],
  ] as const) {
    it(`${status} → ${kind}, with the receiver's words`, async () => {
      await using w = await against(() => ({ status, body: `{"error":"status ${status} said so"}` }));
      const outcome = await w.out.write([{ msg: 'a' }]);
      assert.equal(outcome.kind, kind);
      assert.ok(
        outcome.error.message.endsWith(`/hook: ${status} {"error":"status ${status} said so"}`),
        outcome.error.message,
      );
      if (outcome.kind === 'retry') assert.equal(outcome.unclassified, false);
    });
  }

  it('429 carries the Retry-After of the answer', async () => {
    await using w = await against(() => httpStatus(429, { 'retry-after': '3' }));
    const outcome = await w.out.write([{ msg: 'a' }]);
    assert.ok(outcome.kind === 'retry' && outcome.retryAfterMs === 3000, JSON.stringify(outcome));
  });

  it('refuses options a webhook cannot use, naming the key', async () => {
    await assert.rejects(buildOutput(webhook, 'webhook', { url: 'ftp://x' }), /url/);
    await assert.rejects(buildOutput(webhook, 'webhook', { url: 'http://x', colour: 'red' }), /colour/);
    await assert.rejects(buildOutput(webhook, 'webhook', { url: 'http://x', timeout: 'soon' }), /timeout/);
  });
});
