import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { type Batch, decodeEntries } from '../../../src/core/batch.ts';
import type { TaggedEntry } from '../../../src/core/entry.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { elasticsearchSchema } from '../../../src/outputs/elasticsearch/config.ts';
import { encodeItem, encodeSettings } from '../../../src/outputs/elasticsearch/encode.ts';
import { elasticsearchOutput } from '../../../src/outputs/elasticsearch/index.ts';
import type { Chunk, Output } from '../../../src/outputs/output.ts';
import { ElasticsearchFake, ITEM_429, mappingError } from '../../support/elasticsearch-fake.ts';
import { NO_DEADLINE } from '../../support/outputs.ts';
import { ScriptedHttpSink, type SeenRequest } from '../../support/scripted-http.ts';
import { batches, benchRecord } from './generate.ts';

/**
 * The output on the wire: the bodies it sends are the decoded path's NDJSON, cut into
 * requests; what comes back for retry or rejection is each item's own entry, decoded from
 * its bytes; and the chunk as a whole is never decoded.
 */

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function create(options: Record<string, unknown>): Output {
  const output = elasticsearchOutput.create(elasticsearchOutput.schema.parse(options), {
    id: 'es.bytes',
    logger: silentLogger(),
    metrics: new Metrics(),
    configDir: '.',
  });
  closers.push(async () => output.stop?.());
  return output;
}

/** A chunk of these batches whose entries() fails the test: the output must not need it. */
function chunkOf(input: Batch[], attempt = 0): Chunk {
  return {
    id: 'bytes',
    attempt,
    count: input.reduce((n, b) => n + b.count, 0),
    bytes: input.reduce((n, b) => n + b.bytes, 0),
    batches: input,
    entries: () => assert.fail('the chunk was decoded as a whole'),
  };
}

const decoded = (input: readonly Batch[]): TaggedEntry[] =>
  input.flatMap((b) => decodeEntries(b.payload).map((e) => ({ ...e, tag: b.tag })));

/** What the decoded path sends for these entries, item by item. */
function expectedLines(entries: readonly TaggedEntry[], config: Record<string, unknown>): string[] {
  const s = encodeSettings(elasticsearchSchema.parse(config));
  return entries.flatMap((e) => {
    const item = encodeItem(e, s);
    return typeof item === 'string' ? [] : [`${item.action}\n${item.source}\n`];
  });
}

/** A sink that takes every action of a `_bulk` request, as Elasticsearch answers. */
async function acceptingSink(): Promise<ScriptedHttpSink> {
  const sink = await ScriptedHttpSink.start((request: SeenRequest) => {
    const actions = request.text.split('\n').filter((l) => l !== '').length / 2;
    return {
      status: 200,
      headers: { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' },
      body: JSON.stringify({
        took: 1,
        errors: false,
        items: Array.from({ length: actions }, () => ({ create: { status: 201 } })),
      }),
    };
  });
  closers.push(() => sink.close());
  return sink;
}

describe('elasticsearch output on the wire', () => {
  for (const config of [
    { logstash_format: true, include_tag_key: true },
    { replace_dots: true, compression: 'gzip' },
  ]) {
    it(`sends the decoded path's bytes, cut by bulk_max_actions and bulk_max_bytes (${JSON.stringify(config)})`, async () => {
      const sink = await acceptingSink();
      const input = batches(21, 60);
      const options = { hosts: [sink.url], bulk_max_actions: 7, bulk_max_bytes: 4000, ...config };
      assert.equal(await create(options).write(chunkOf(input), NO_DEADLINE), undefined);
      const lines = expectedLines(decoded(input), config);
      assert.equal(sink.requests.map((r) => r.text).join(''), lines.join(''));
      assert.ok(sink.requests.length >= 9, `${sink.requests.length} requests`);
      for (const r of sink.requests) {
        const actions = (r.text.split('\n').length - 1) / 2;
        assert.ok(actions <= 7);
        assert.ok(Buffer.byteLength(r.text) <= 4000 || actions === 1);
        assert.equal(r.headers['content-type'], 'application/x-ndjson');
      }
    });
  }
});

describe('elasticsearch output: what comes back is each item’s own entry', () => {
  it('retries the 429s and rejects the mapping errors with their entries (tags, times, metadata intact)', async () => {
    const fake = await ElasticsearchFake.start();
    closers.push(() => fake.stop());
    const input = batches(33, 40, benchRecord);
    const entries = decoded(input);
    assert.ok(entries.some((e) => e.metadata !== undefined));
    assert.ok(new Set(entries.map((e) => e.tag)).size > 1);
    // Each fault picks documents by content, so the expected entries can be picked the same way.
    const path = (e: TaggedEntry) => String(e.record.path);
    fake.itemFault = (a) => {
      const p = String(a.source?.path);
      if (p.endsWith('3') || p.endsWith('3.js')) return ITEM_429;
      if (p.endsWith('7') || p.endsWith('7.js')) return mappingError('path', p);
      return undefined;
    };
    const output = create({ hosts: [fake.url], bulk_max_actions: 9 });
    const result = await output.write(chunkOf(input), NO_DEADLINE);
    assert.deepEqual(
      result!.retry,
      entries.filter((e) => path(e).endsWith('3') || path(e).endsWith('3.js')),
    );
    assert.deepEqual(
      result!.reject!.map((r) => r.entry),
      entries.filter((e) => path(e).endsWith('7') || path(e).endsWith('7.js')),
    );
    assert.ok(result!.retry!.length > 0 && result!.reject!.length > 0);
    assert.equal(
      fake.count(),
      entries.length - result!.retry!.length - result!.reject!.length,
      'the others indexed',
    );
  });

  it('a request failing as a whole gives back its entries and those of the requests not sent', async () => {
    const fake = await ElasticsearchFake.start();
    closers.push(() => fake.stop());
    const input = batches(34, 20, benchRecord);
    fake.requestFaults = [null, { status: 503 }];
    const result = await create({ hosts: [fake.url], bulk_max_actions: 6 }).write(
      chunkOf(input),
      NO_DEADLINE,
    );
    assert.deepEqual(result!.retry, decoded(input).slice(6));
    assert.equal(fake.count(), 6);
  });
});
