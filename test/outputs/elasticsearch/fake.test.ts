import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, errors, SniffingTransport, type TransportOptions } from '@elastic/elasticsearch';
import { ElasticsearchFake, ITEM_429 } from '../../support/elasticsearch-fake.ts';

/**
 * The fake, driven by the official client exactly as an application would drive a cluster:
 * if these pass, the client accepts the fake's answers as Elasticsearch's.
 */
describe('elasticsearch fake, through the official client', () => {
  let fake: ElasticsearchFake;
  let client: Client;
  before(async () => {
    fake = await ElasticsearchFake.start({ version: '9.1.0', auth: { username: 'elastic', password: 'pw' } });
    client = new Client({ node: fake.url, auth: { username: 'elastic', password: 'pw' }, maxRetries: 0 });
  });
  after(async () => {
    await client.close();
    await fake.stop();
  });

  it('passes the product check and answers GET / like a node', async () => {
    const info = await client.info();
    assert.equal(info.version.number, '9.1.0');
    assert.equal(info.tagline, 'You Know, for Search');
  });

  it('indexes a bulk request and answers item by item: created, 409 on a second create, 404 on update', async () => {
    const res = await client.bulk({
      operations: [
        { create: { _index: 'logs', _id: 'a' } },
        { msg: 'one' },
        { create: { _index: 'logs', _id: 'a' } },
        { msg: 'one again' },
        { index: { _index: 'logs' } },
        { msg: 'auto id' },
        { update: { _index: 'logs', _id: 'missing' } },
        { doc: { msg: 'x' } },
      ],
    });
    assert.equal(res.errors, true);
    const [created, conflict, indexed, missing] = res.items;
    assert.equal(created!.create!.status, 201);
    assert.equal(created!.create!.result, 'created');
    assert.equal(conflict!.create!.status, 409);
    assert.equal(conflict!.create!.error!.type, 'version_conflict_engine_exception');
    assert.match(conflict!.create!.error!.reason!, /document already exists/);
    assert.equal(indexed!.index!.status, 201);
    assert.match(indexed!.index!._id!, /^[A-Za-z0-9_-]{20}$/);
    assert.equal(missing!.update!.status, 404);
    assert.equal(missing!.update!.error!.type, 'document_missing_exception');
    assert.equal(fake.documents('logs').find((d) => d.id === 'a')!.source.msg, 'one');
  });

  it('refuses what a mapping refuses, and uppercase index names', async () => {
    const res = await client.bulk({
      operations: [
        { create: { _index: 'typed' } },
        { n: 1, obj: { a: 1 } },
        { create: { _index: 'typed' } },
        { n: 'not a number' },
        { create: { _index: 'typed' } },
        { obj: 'flat' },
        { create: { _index: 'Typed' } },
        { n: 2 },
      ],
    });
    const statuses = res.items.map((i) => i.create!.status);
    assert.deepEqual(statuses, [201, 400, 400, 400]);
    assert.equal(res.items[1]!.create!.error!.type, 'document_parsing_exception');
    assert.match(res.items[1]!.create!.error!.reason!, /failed to parse field \[n\] of type \[long\]/);
    assert.equal(res.items[3]!.create!.error!.type, 'invalid_index_name_exception');
  });

  it('injects item-level 429s and whole-request failures with Retry-After', async () => {
    fake.itemFault = (a) => (a.source?.busy ? ITEM_429 : undefined);
    const res = await client.bulk({
      operations: [{ create: { _index: 'f' } }, { busy: true }, { create: { _index: 'f' } }, { busy: false }],
    });
    fake.itemFault = undefined;
    assert.deepEqual(
      res.items.map((i) => i.create!.status),
      [429, 201],
    );
    fake.requestFaults.push({ status: 503, retryAfter: 7 });
    const err = await client
      .bulk({ operations: [{ create: { _index: 'f' } }, { a: 1 }] })
      .catch((e: unknown) => e);
    assert.ok(err instanceof errors.ResponseError);
    assert.equal(err.statusCode, 503);
    assert.equal(err.headers!['retry-after'], '7');
    assert.equal(err.body.error.type, 'unavailable_shards_exception');
  });

  it('answers 413 above maxBodyBytes, and takes gzip bodies', async () => {
    const gz = new Client({
      node: fake.url,
      auth: { username: 'elastic', password: 'pw' },
      compression: true,
    });
    fake.maxBodyBytes = 2000;
    const noise = randomBytes(3000).toString('base64');
    const big = await gz
      .bulk({ operations: [{ create: { _index: 'z' } }, { pad: noise }] })
      .catch((e: unknown) => e);
    fake.maxBodyBytes = Number.POSITIVE_INFINITY;
    assert.ok(big instanceof errors.ResponseError);
    assert.equal(big.statusCode, 413);
    const ok = await gz.bulk({ operations: [{ create: { _index: 'z' } }, { pad: 'x'.repeat(5000) }] });
    assert.equal(ok.errors, false);
    assert.equal(fake.bulkRequests.at(-1)!.headers['content-encoding'], 'gzip');
    assert.ok(fake.bulkRequests.at(-1)!.bytes < 200, 'the body travelled compressed');
    assert.equal(fake.documents('z')[0]!.source.pad, 'x'.repeat(5000));
    await gz.close();
  });

  it('refuses wrong credentials with 401 and a WWW-Authenticate header', async () => {
    const bad = new Client({
      node: fake.url,
      auth: { username: 'elastic', password: 'nope' },
      maxRetries: 0,
    });
    const err = await bad.info().catch((e: unknown) => e);
    assert.ok(err instanceof errors.ResponseError);
    assert.equal(err.statusCode, 401);
    assert.equal(err.body.error.type, 'security_exception');
    assert.match(String(err.headers!['www-authenticate']), /Basic realm="security"/);
    await bad.close();
  });

  it("checks compatible-with as Elasticsearch 8 does: the 9.x client's default is refused", async () => {
    const es8 = await ElasticsearchFake.start({ version: '8.19.0' });
    // The client as shipped (no transport override) sends compatible-with=9.
    const v9 = new Client({ node: es8.url, maxRetries: 0 });
    const err = await v9
      .bulk({ operations: [{ create: { _index: 'c' } }, { a: 1 }] })
      .catch((e: unknown) => e);
    assert.ok(err instanceof errors.ResponseError);
    assert.equal(err.statusCode, 400);
    assert.equal(err.body.error.type, 'media_type_header_exception');
    assert.match(err.body.error.caused_by.reason, /must be either version 8 or 7, but found 9/);
    assert.match(es8.requests.at(-1)!.headers['content-type']!, /compatible-with=9/);
    await v9.close();
    await es8.stop();
  });

  it('as OpenSearch: no product header (the client refuses it) and no vendored media types', async () => {
    const os = await ElasticsearchFake.start({ flavor: 'opensearch' });
    const strict = new Client({ node: os.url, maxRetries: 0 });
    const err = await strict.info().catch((e: unknown) => e);
    assert.ok(err instanceof errors.ProductNotSupportedError);
    await strict.close();
    class Plain extends SniffingTransport {
      constructor(opts: TransportOptions) {
        super({ ...opts, productCheck: undefined, vendoredHeaders: {} });
      }
    }
    const lenient = new Client({ node: os.url, maxRetries: 0, Transport: Plain });
    const info = await lenient.info();
    assert.equal((info.version as { distribution?: string }).distribution, 'opensearch');
    const res = await lenient.bulk({ operations: [{ create: { _index: 'o' } }, { a: 1 }] });
    assert.equal(res.errors, false);
    await lenient.close();
    await os.stop();
  });

  it('installs index templates and makes matching names data streams', async () => {
    await client.indices.putIndexTemplate({ name: 'logs-ds', index_patterns: ['logs-*-*'], data_stream: {} });
    assert.equal(await client.indices.existsIndexTemplate({ name: 'logs-ds' }), true);
    assert.equal(await client.indices.existsIndexTemplate({ name: 'nope' }), false);
    const res = await client.bulk({
      operations: [
        { index: { _index: 'logs-app-default' } },
        { '@timestamp': '2026-01-01T00:00:00Z' },
        { create: { _index: 'logs-app-default' } },
        { msg: 'no time' },
        { create: { _index: 'logs-app-default' } },
        { '@timestamp': '2026-01-01T00:00:00Z' },
      ],
    });
    assert.deepEqual(
      res.items.map((i) => Object.values(i)[0]!.status),
      [400, 400, 201],
    );
    assert.match(res.items[0]!.index!.error!.reason!, /only write ops with an op_type of create/);
    assert.match(res.items[2]!.create!._index, /^\.ds-logs-app-default-/);
  });
});
