import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import snappy from 'snappyjs';
import { LokiFake } from '../../support/loki-fake.ts';

/**
 * The fake against bodies built without the output (protobufjs + snappyjs, or plain JSON), so
 * the rules the output is tested against are Loki's and not the encoder's.
 */
const PushRequest = protobuf
  .loadSync(fileURLToPath(new URL('../../../src/outputs/loki/push.proto', import.meta.url)))
  .lookupType('logproto.PushRequest');

let fake: LokiFake;
beforeEach(async () => {
  fake = await LokiFake.start();
});
afterEach(() => fake.stop());

const nowSec = Math.floor(Date.now() / 1000);

function protobufBody(
  streams: { labels: string; entries: { seconds: number; nanos?: number; line: string }[] }[],
) {
  const message = PushRequest.fromObject({
    streams: streams.map((s) => ({
      labels: s.labels,
      entries: s.entries.map((e) => ({
        timestamp: { seconds: e.seconds, nanos: e.nanos ?? 0 },
        line: e.line,
      })),
    })),
  });
  return snappy.compress(Buffer.from(PushRequest.encode(message).finish()));
}

const push = (body: Uint8Array | string, headers: Record<string, string> = {}) =>
  fetch(`${fake.url}/loki/api/v1/push`, {
    method: 'POST',
    headers: {
      'content-type': typeof body === 'string' ? 'application/json' : 'application/x-protobuf',
      ...headers,
    },
    body,
  });

describe('loki fake', () => {
  it('stores protobuf streams, answers 204, and ignores an exact duplicate', async () => {
    const body = protobufBody([
      {
        labels: '{job="a", app="x"}',
        entries: [
          { seconds: nowSec, nanos: 1, line: 'one' },
          { seconds: nowSec, nanos: 1, line: 'one' },
        ],
      },
    ]);
    assert.equal((await push(body)).status, 204);
    assert.equal((await push(body)).status, 204);
    assert.deepEqual(fake.stream({ app: 'x', job: 'a' })!.entries, [
      { ts: BigInt(nowSec) * 1_000_000_000n + 1n, line: 'one', metadata: {} },
    ]);
    assert.equal(fake.stream({ app: 'x', job: 'a' })!.key, '{app="x", job="a"}');
  });

  it('JSON bodies, gzip too, with structured metadata', async () => {
    const json = JSON.stringify({
      streams: [{ stream: { job: 'j' }, values: [[`${nowSec}000000005`, 'line', { trace_id: 't1' }]] }],
    });
    const res = await fetch(`${fake.url}/loki/api/v1/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(json),
    });
    assert.equal(res.status, 204);
    assert.deepEqual(fake.stream({ job: 'j' })!.entries[0]!.metadata, { trace_id: 't1' });
  });

  it('refuses invalid label names and label-less streams with Loki’s messages, keeping the valid streams', async () => {
    const res = await push(
      protobufBody([
        { labels: '{1app="x"}', entries: [{ seconds: nowSec, line: 'a' }] },
        { labels: '{}', entries: [{ seconds: nowSec, line: 'b' }] },
        { labels: '{ok="y"}', entries: [{ seconds: nowSec, line: 'c' }] },
      ]),
    );
    assert.equal(res.status, 400);
    assert.equal(
      await res.text(),
      `Error parsing labels '{1app="x"}' with error: invalid label name "1app"\nerror at least one label pair is required per stream\n`,
    );
    assert.deepEqual(fake.lines(), ['c']);
  });

  it('too far behind: measured from the stream’s newest entry, in the ingester’s words', async () => {
    await fake.stop();
    fake = await LokiFake.start({ now: () => 1_800_000_000_000 });
    const res = await push(
      protobufBody([
        {
          labels: '{job="a"}',
          entries: [
            { seconds: 1_800_000_000, nanos: 500_000_000, line: 'new' },
            { seconds: 1_799_999_999, line: 'older' },
            { seconds: 1_799_992_000, line: 'ancient' },
          ],
        },
        // A stream's first entry is behind nothing, whatever the clock says.
        { labels: '{job="b"}', entries: [{ seconds: 1_799_992_000, line: 'first of b' }] },
      ]),
      { 'x-scope-orgid': 'team-a' },
    );
    assert.equal(res.status, 400);
    assert.equal(
      await res.text(),
      "entry with timestamp 2027-01-15 05:46:40 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2027-01-15T05:46:40Z, oldest acceptable timestamp is: 2027-01-15T07:00:00Z',\n" +
        'user \'team-a\', total ignored: 1 out of 3 for stream: {job="a"}\n',
    );
    assert.deepEqual(fake.lines('team-a'), ['new', 'older', 'first of b']);
  });

  it('the window is configurable (max_chunk_age/2), and the newest moves within a push', async () => {
    await fake.stop();
    fake = await LokiFake.start({ tooFarBehindMs: 2000, now: () => 1_800_000_000_000 });
    const res = await push(
      protobufBody([
        {
          labels: '{job="a"}',
          entries: [
            { seconds: 1_799_999_990, line: 'one' },
            { seconds: 1_799_999_995, line: 'two' },
            { seconds: 1_799_999_993, line: 'within 2 s of two' },
            { seconds: 1_799_999_992, line: 'three behind two' },
          ],
        },
      ]),
    );
    assert.equal(res.status, 400);
    assert.match(
      await res.text(),
      /^entry with timestamp 2027-01-15 07:59:52 \+0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2027-01-15T07:59:52Z, oldest acceptable timestamp is: 2027-01-15T07:59:53Z',\nuser 'fake', total ignored: 1 out of 4 for stream: \{job="a"\}\n$/,
    );
    assert.deepEqual(fake.lines(), ['one', 'two', 'within 2 s of two']);
  });

  it('ordered writes: anything older than the stream’s newest is out of order', async () => {
    await fake.stop();
    fake = await LokiFake.start({ orderedWrites: true, now: () => 1_800_000_000_000 });
    const res = await push(
      protobufBody([
        {
          labels: '{job="a"}',
          entries: [
            { seconds: 1_800_000_000, nanos: 500_000_000, line: 'new' },
            { seconds: 1_799_999_999, line: 'older' },
            { seconds: 1_800_000_000, nanos: 500_000_000, line: 'same time, other line' },
          ],
        },
      ]),
      { 'x-scope-orgid': 'team-a' },
    );
    assert.equal(res.status, 400);
    assert.equal(
      await res.text(),
      "entry with timestamp 2027-01-15 07:59:59 +0000 UTC ignored, reason: 'entry out of order',\n" +
        'user \'team-a\', total ignored: 1 out of 3 for stream: {job="a"}\n',
    );
    assert.equal(fake.count('team-a'), 2);
  });

  it('the distributor refuses entries older than reject_old_samples_max_age (1 week)', async () => {
    await fake.stop();
    fake = await LokiFake.start({ now: () => 1_800_000_000_000 });
    const res = await push(
      protobufBody([
        { labels: '{job="a"}', entries: [{ seconds: 1_800_000_000 - 8 * 86_400, line: 'old' }] },
      ]),
    );
    assert.equal(res.status, 400);
    assert.equal(
      await res.text(),
      'entry for stream \'{job="a"}\' has timestamp too old: 2027-01-07T08:00:00Z, oldest acceptable timestamp is: 2027-01-08T08:00:00Z\n',
    );
    assert.equal(fake.count(), 0);
  });

  it('multi-tenant Loki wants an org id; faults come in order, with Retry-After', async () => {
    await fake.stop();
    fake = await LokiFake.start({ multiTenant: true });
    const body = protobufBody([{ labels: '{job="a"}', entries: [{ seconds: nowSec, line: 'x' }] }]);
    const res = await push(body);
    assert.equal(res.status, 401);
    assert.equal(await res.text(), 'no org id\n');
    fake.faults = [{ status: 429, retryAfter: 7 }];
    const limited = await push(body, { 'x-scope-orgid': 't' });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '7');
    assert.equal((await push(body, { 'x-scope-orgid': 't' })).status, 204);
    assert.equal((await fetch(`${fake.url}/loki/api/v1/other`, { method: 'POST' })).status, 404);
  });
});
