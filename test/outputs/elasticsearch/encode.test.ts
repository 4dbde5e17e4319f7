import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { batchesOf, makeChunk } from '../../../src/buffer/chunk.ts';
import type { Batch } from '../../../src/core/batch.ts';
import { isLogRecord, type TaggedEntry } from '../../../src/core/entry.ts';
import { EventTime } from '../../../src/core/event-time.ts';
import { eventTimeBytes, pack } from '../../../src/core/msgpack.ts';
import { BulkEncoder } from '../../../src/outputs/elasticsearch/bulk-encoder.ts';
import { elasticsearchSchema } from '../../../src/outputs/elasticsearch/config.ts';
import { documentId } from '../../../src/outputs/elasticsearch/document-id.ts';
import { type EncodeSettings, encodeSettings } from '../../../src/outputs/elasticsearch/encode.ts';

/**
 * Golden tests: testdata/entries.json through each case of testdata/cases.json must give
 * exactly the NDJSON in testdata/<golden>. `UPDATE_GOLDEN=1` rewrites the files (then read
 * the diff before committing it).
 */
const dir = join(import.meta.dirname, 'testdata');

interface Case {
  name: string;
  config: Record<string, unknown>;
  golden: string;
  rejected?: string[];
}

function loadEntries(): TaggedEntry[] {
  const raw = JSON.parse(readFileSync(join(dir, 'entries.json'), 'utf8')) as {
    tag: string;
    time: [number, number];
    record: Record<string, unknown>;
  }[];
  return raw.map((e) => ({ tag: e.tag, time: new EventTime(e.time[0], e.time[1]), record: e.record }));
}

const settings = (config: Record<string, unknown>) => encodeSettings(elasticsearchSchema.parse(config));

/**
 * msgpack as a forward peer sends it. core's pack writes a nested EventTime as a map of `sec`
 * and `nsec`; a peer sends ext 0, which is what the test of nested times is about.
 */
function peerPack(value: unknown): Buffer {
  if (value instanceof EventTime) return eventTimeBytes(value);
  const header = (n: number, fix: number, b16: number) =>
    n < 16 ? Buffer.from([fix | n]) : Buffer.from([b16, n >> 8, n & 0xff]);
  if (Array.isArray(value)) return Buffer.concat([header(value.length, 0x90, 0xdc), ...value.map(peerPack)]);
  if (isLogRecord(value)) {
    const keys = Object.keys(value);
    return Buffer.concat([
      header(keys.length, 0x80, 0xde),
      ...keys.flatMap((k) => [pack(k), peerPack(value[k])]),
    ]);
  }
  return pack(value);
}

/** A record nested too deep for peerPack's recursion has no EventTime to keep: core's pack takes it. */
function recordBytes(record: unknown): Buffer {
  try {
    return peerPack(record);
  } catch (err) {
    if (err instanceof RangeError) return pack(record);
    throw err;
  }
}

/** Entries as a chunk's batches hold them, one batch per run of a tag. */
function peerBatches(entries: readonly TaggedEntry[]): Batch[] {
  const runs: { tag: string; parts: Buffer[] }[] = [];
  for (const e of entries) {
    if (runs.at(-1)?.tag !== e.tag) runs.push({ tag: e.tag, parts: [] });
    runs.at(-1)!.parts.push(Buffer.from([0x92]), eventTimeBytes(e.time), recordBytes(e.record));
  }
  return runs.map(({ tag, parts }) => {
    const payload = Buffer.concat(parts);
    return { tag, payload, count: parts.length / 3, bytes: payload.length };
  });
}

/** The entries as a chunk holds them, through the encoder the output uses: the body it sends, item by item. */
function encodeBulk(entries: readonly TaggedEntry[], s: EncodeSettings) {
  const bulk = new BulkEncoder(s).encode(peerBatches(entries));
  const items = bulk.items().map((i) => ({ entry: bulk.entry(i), ...bulk.lines(i), bytes: bulk.bytes(i) }));
  return { items, rejected: bulk.rejected, body: bulk.body.toString('utf8') };
}
const entry = (record: Record<string, unknown>, time = new EventTime(1_700_000_000, 1), tag = 'app') => ({
  tag,
  time,
  record,
});

describe('elasticsearch encoding (golden)', () => {
  const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as Case[];
  const entries = loadEntries();
  for (const c of cases) {
    it(c.name, () => {
      const { body, rejected } = encodeBulk(entries, settings(c.config));
      const file = join(dir, c.golden);
      if (process.env.UPDATE_GOLDEN) writeFileSync(file, body);
      assert.equal(body, readFileSync(file, 'utf8'));
      assert.deepEqual(
        rejected.map((r) => r.reason),
        c.rejected ?? [],
      );
      for (const line of body.trimEnd().split('\n')) JSON.parse(line);
    });
  }
});

describe('elasticsearch encoding', () => {
  it('keeps EventTime nanoseconds in @timestamp (RFC 3339, nine digits, UTC)', () => {
    const { items } = encodeBulk([entry({ msg: 'x' }, new EventTime(1_700_000_000, 5))], settings({}));
    assert.equal(JSON.parse(items[0]!.source)['@timestamp'], '2023-11-14T22:13:20.000000005Z');
  });

  it('names logstash indices by the record time, not the wall clock', () => {
    const s = settings({ logstash_format: true, logstash_prefix: 'golang-app-metrics' });
    const old = encodeBulk([entry({ a: 1 }, new EventTime(946_684_799, 999_999_999))], s).items[0]!;
    assert.equal(JSON.parse(old.action).create._index, 'golang-app-metrics-1999.12.31');
  });

  it('gives an _id that depends on tag, time (to the nanosecond) and record, and nothing else', () => {
    const base = entry({ msg: 'hello', n: 1 });
    const id = documentId(base);
    assert.match(id, /^[A-Za-z0-9_-]{27}$/);
    assert.equal(documentId({ ...base, record: { msg: 'hello', n: 1 } }), id, 'same content, new object');
    assert.notEqual(documentId({ ...base, tag: 'other' }), id);
    assert.notEqual(documentId({ ...base, time: new EventTime(1_700_000_000, 2) }), id);
    assert.notEqual(documentId({ ...base, record: { msg: 'hello', n: 2 } }), id);
    assert.equal(documentId({ ...base, metadata: { otel: true } }), id, 'Fluent Bit metadata is not indexed');
  });

  it('gives a retried entry the _id of its first try (the buffer re-encodes what it retries)', () => {
    // Integer-like keys reorder, floats that are integral and nested maps all survive the
    // decode → encode round the buffer makes for retried entries.
    const original = entry({ b: 1, 10: 'ten', 2: 'two', f: 2.0, x: 0.1, deep: { z: [1, { y: null }] } });
    const [first] = makeChunk('c', batchesOf([original]), 0).entries();
    const [retried] = makeChunk('c', batchesOf([first!]), 1).entries();
    assert.equal(documentId(retried!), documentId(first!));
  });

  it('never modifies the record it encodes (a retried entry must hash the same)', () => {
    const record = { a: { b: { c: 1, d: 2 } }, 'x.y': 1, keep: true };
    const copy = structuredClone(record);
    encodeBulk(
      [entry(record)],
      settings({ remove_keys: ['$.a.b.c', 'keep'], replace_dots: true, include_tag_key: true }),
    );
    assert.deepEqual(record, copy);
  });

  it('turns what JSON lacks into JSON: big integers exact, binary as text or base64, nested times', () => {
    const { items } = encodeBulk(
      [
        entry({
          big: 12345678901234567890n,
          text: Buffer.from('hello'),
          bin: Buffer.from([0xff, 0x00]),
          at: new EventTime(1, 2),
        }),
      ],
      settings({}),
    );
    assert.match(items[0]!.source, /"big":12345678901234567890,/);
    const doc = JSON.parse(items[0]!.source);
    assert.equal(doc.text, 'hello');
    assert.equal(doc.bin, '/wA=');
    assert.equal(doc.at, '1970-01-01T00:00:01.000000002Z');
  });

  it('keeps a numeric id_key value as its digits, and falls back to a generated id when absent', () => {
    const s = settings({ id_key: 'id' });
    const [withId, without] = encodeBulk([entry({ id: 42 }), entry({ other: 1 })], s).items;
    assert.equal(JSON.parse(withId!.action).create._id, '42');
    assert.equal(JSON.parse(without!.action).create._id, documentId(entry({ other: 1 })));
    const none = encodeBulk([entry({ other: 1 })], settings({ generate_id: false })).items[0]!;
    assert.equal(JSON.parse(none.action).create._id, undefined, 'no _id: the cluster assigns one');
  });

  it('makes substituted values inert in index names and lowercases the result', () => {
    const s = settings({ index: 'Logs-${tag}-${$.ns}' });
    const [item] = encodeBulk([entry({ ns: 'A b,c*' }, undefined, 'App/Web#1')], s).items;
    assert.equal(JSON.parse(item!.action).create._index, 'logs-app_web_1-a_b_c_');
  });

  it('counts the bytes each item adds to the body exactly', () => {
    const { items, body } = encodeBulk([entry({ msg: 'héllo ✓' }), entry({ n: 1 })], settings({}));
    assert.equal(
      items.reduce((n, i) => n + i.bytes, 0),
      Buffer.byteLength(body),
    );
  });
});

describe('elasticsearch encoding — a record that cannot be encoded', () => {
  it('is rejected alone with the reason (a record 3,000 deep overflows JSON.stringify); the others are items', () => {
    const deep: Record<string, unknown> = { a: [] };
    let cur = deep.a as unknown[];
    for (let i = 0; i < 3000; i++) {
      const next: unknown[] = [];
      cur.push(next);
      cur = next;
    }
    for (const config of [{}, { replace_dots: true }, { write_operation: 'upsert', id_key: 'id' }]) {
      const { items, rejected } = encodeBulk(
        [entry({ id: 1, ok: 0 }), entry({ ...deep, id: 2 }), entry({ id: 3, ok: 2 })],
        settings(config),
      );
      assert.deepEqual(
        items.map((i) => i.entry.record.id),
        [1, 3],
        JSON.stringify(config),
      );
      assert.equal(rejected.length, 1);
      assert.match(
        rejected[0]!.reason,
        /^cannot encode the record: EncodeError: nested too deep to write as JSON$/,
      );
    }
  });
});
