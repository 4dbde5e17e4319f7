import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Batch, decodeEntries } from '../../../src/core/batch.ts';
import type { TaggedEntry } from '../../../src/core/entry.ts';
import { EntryCursor } from '../../../src/core/entry-cursor.ts';
import { JsonBuffer } from '../../../src/core/json-buffer.ts';
import { pack, unpack } from '../../../src/core/msgpack.ts';
import { splitRequests } from '../../../src/delivery/request.ts';
import { BulkEncoder } from '../../../src/outputs/elasticsearch/bulk-encoder.ts';
import { isCanonical, UNSURE, writeCanonical } from '../../../src/outputs/elasticsearch/canonical-msgpack.ts';
import { elasticsearchSchema } from '../../../src/outputs/elasticsearch/config.ts';
import { DocumentIds, documentId } from '../../../src/outputs/elasticsearch/document-id.ts';
import {
  type EncodeSettings,
  encodeItem,
  encodeSettings,
} from '../../../src/outputs/elasticsearch/encode.ts';
import type { Rejection } from '../../../src/outputs/output.ts';
import { Gen } from '../../support/msgpack-gen.ts';
import { batches, benchRecord, record } from './generate.ts';

/**
 * The byte path (BulkEncoder) against the decoded path (encodeItem on decoded entries), which
 * the golden tests pin: for generated batches and every kind of setting, the same body byte
 * for byte, the same rejections, and each item mapped back to its own entry.
 */

const settings = (config: Record<string, unknown>) => encodeSettings(elasticsearchSchema.parse(config));

/** What the decoded path makes of the batches: the body, the rejections, the entries of the items. */
function decodedPath(input: readonly Batch[], s: EncodeSettings) {
  const lines: string[] = [];
  const rejected: Rejection[] = [];
  const entries: TaggedEntry[] = [];
  for (const batch of input) {
    for (const e of decodeEntries(batch.payload)) {
      const entry = { ...e, tag: batch.tag };
      const item = encodeItem(entry, s);
      if (typeof item === 'string') rejected.push({ entry, reason: item });
      else {
        lines.push(`${item.action}\n${item.source}\n`);
        entries.push(entry);
      }
    }
  }
  return { body: Buffer.from(lines.join('')), rejected, entries };
}

/** Settings the byte path takes on (the first ones) and those it leaves to the decoded path. */
const CONFIGS: Record<string, unknown>[] = [
  {},
  { logstash_format: true, logstash_prefix: 'Go-${tag[1]}' },
  { include_tag_key: true },
  { include_tag_key: true, tag_key: 'fluentd_tag', logstash_format: true },
  { include_tag_key: true, remove_keys: ['tag', '@timestamp', 'msg'] },
  { remove_keys: ['msg', '5', 'é', 'constructor'] },
  { id_key: 'id' },
  { id_key: '$.kubernetes.pod_name', routing_key: 'id', pipeline: 'p"q', suppress_type_name: false },
  { write_operation: 'upsert', id_key: 'request_id', remove_keys: ['request_id'] },
  { write_operation: 'update', id_key: '$.id', generate_id: false },
  { write_operation: 'index', time_key: 'time', time_key_format: '%Y-%m-%dT%H:%M:%S.%L%z' },
  { data_stream: true, index: 'logs-${tag}-default', time_key_format: '%s %j' },
  { index: "k8s-${record['kubernetes']['namespace_name']}-${$.id}-%Y.%m.%d-%H%M%S-%N", generate_id: false },
  { index: 'by-${$.kubernetes.labels.k1}-${tag[-1]}', include_tag_key: true, tag_key: 'time' },
  { generate_id: false, time_key: 'msg' },
  // Number, boolean and nil keys, which decoding makes strings of.
  {
    id_key: '5',
    routing_key: '$.kubernetes.labels.0',
    remove_keys: ['@timestamp'],
    index: 'x-${$.true}-${$.null}',
  },
  { include_tag_key: true, tag_key: 'true', time_key: 'null' },
  // Paths through arrays, binary and EventTimes, which decoded are objects with fields.
  { id_key: '$.k1.length', routing_key: '$.k2.0', index: 'i-${$.k3.sec}-${$.k4.byteLength}' },
  // Left to the decoded path as a whole.
  { replace_dots: true, include_tag_key: true },
  { remove_keys: ['$.kubernetes.labels', 'msg'] },
  { time_key: '5' },
  { time_key: 'constructor' },
  { include_tag_key: true, tag_key: '@timestamp' },
  { id_key: '$.__proto__.x' },
];

function compare(input: readonly Batch[], config: Record<string, unknown>, what: string) {
  const s = settings(config);
  const want = decodedPath(input, s);
  const got = new BulkEncoder(settings(config)).encode(input);
  const label = `${what}, ${JSON.stringify(config)}`;
  if (!got.body.equals(want.body)) {
    assert.equal(got.body.toString('utf8'), want.body.toString('utf8'), label);
    assert.fail(`${label}: same text, different bytes`);
  }
  assert.deepEqual(
    got.rejected.map((r) => [r.reason, r.entry]),
    want.rejected.map((r) => [r.reason, r.entry]),
    label,
  );
  assert.equal(got.count, want.entries.length, label);
  let bytes = 0;
  for (let i = 0; i < got.count; i++) {
    assert.deepEqual(got.entry(i), want.entries[i], `${label}: item ${i}'s entry`);
    bytes += got.bytes(i);
  }
  assert.equal(bytes, got.body.length, label);
  return got;
}

describe('elasticsearch bulk encoder: the byte path writes what the decoded path writes', () => {
  it('for generated batches (odd widths, keys, UTF-8, nested times, metadata) under every kind of setting', () => {
    for (const config of CONFIGS) {
      for (let seed = 1; seed <= 150; seed++) compare(batches(seed, 8), config, `seed ${seed}`);
    }
  });

  it('for the bench records, without decoding one of them under the settings it covers', () => {
    const fast = CONFIGS.slice(
      0,
      CONFIGS.findIndex((c) => c.replace_dots === true),
    );
    for (const config of fast) {
      const bulk = compare(batches(7, 300, benchRecord), config, 'bench records');
      assert.equal(bulk.decoded, 0, JSON.stringify(config));
      assert.equal(new BulkEncoder(settings(config)).decodedBecause, undefined);
    }
    const bulk = compare(batches(7, 50, benchRecord), { replace_dots: true }, 'bench records');
    assert.equal(bulk.decoded, 50);
  });

  it('a record with its own tag_key goes the decoded path (overwritten in place); its neighbours do not', () => {
    const input = batches(3, 3, (_g, i) => pack(i === 1 ? { a: 1, tag: 'mine', b: 2 } : { a: i }));
    const bulk = compare(input, { include_tag_key: true }, 'own tag key');
    assert.equal(bulk.decoded, 1);
    assert.match(bulk.lines(1).source, /^\{"a":1,"tag":"[^"]*","b":2,"@timestamp":"/);
  });

  it('keeps a record’s own time_key and adds fields to an empty record without a stray comma', () => {
    const input = batches(4, 2, (_g, i) => pack(i === 0 ? {} : { '@timestamp': 'mine' }));
    const bulk = compare(input, { include_tag_key: true }, 'time key');
    assert.match(bulk.lines(0).source, /^\{"tag":"[^"]*","@timestamp":"\d{4}-[^"]*Z"\}$/);
    assert.match(bulk.lines(1).source, /^\{"@timestamp":"mine","tag":"[^"]*"\}$/);
  });
});

describe('elasticsearch bulk body', () => {
  it('cuts requests out of the one body: each a view of it, together the whole of it, in order', () => {
    const bulk = new BulkEncoder(settings({})).encode(batches(11, 40, benchRecord));
    const requests = splitRequests(bulk.items(), {
      maxBytes: 2000,
      maxCount: 7,
      bytes: (i) => bulk.bytes(i),
    });
    assert.ok(requests.length > 5, `${requests.length} requests`);
    const bodies = requests.map((r) => bulk.slice(r));
    for (const [k, body] of bodies.entries()) {
      assert.equal(body.buffer, bulk.body.buffer, 'no copy');
      assert.ok(body.length <= 2000 || requests[k]!.length === 1);
      assert.equal(body.toString().split('\n').length - 1, 2 * requests[k]!.length);
    }
    assert.ok(Buffer.concat(bodies).equals(bulk.body));
    // The halves a 413 makes are ranges too; items out of order are copied together.
    assert.equal(
      bulk.slice([3, 4]).byteOffset,
      bulk.body.byteOffset + bulk.bytes(0) + bulk.bytes(1) + bulk.bytes(2),
    );
    assert.equal(
      bulk.slice([5, 2]).toString(),
      `${bulk.lines(5).action}\n${bulk.lines(5).source}\n${bulk.lines(2).action}\n${bulk.lines(2).source}\n`,
    );
  });

  it('maps items back to their entries across batches, past a record refused in the middle', () => {
    const input = batches(5, 6, (_g, i) => pack(i === 2 ? { n: i } : { n: i, request_id: `r${i}` }));
    const bulk = new BulkEncoder(settings({ write_operation: 'upsert', id_key: 'request_id' })).encode(input);
    assert.deepEqual(
      bulk.rejected.map((r) => r.entry.record.n),
      [2],
    );
    assert.deepEqual(
      bulk.items().map((i) => bulk.entry(i).record.n),
      [0, 1, 3, 4, 5],
    );
    const all = input.flatMap((b) => decodeEntries(b.payload).map((e) => ({ ...e, tag: b.tag })));
    assert.deepEqual(bulk.entry(3), all[4]);
  });
});

describe('canonical msgpack for document ids', () => {
  it('is what pack(unpack(bytes)) gives whenever it answers, for 20,000 generated records', () => {
    let written = 0;
    let already = 0;
    for (let seed = 1; seed <= 20_000; seed++) {
      const bytes = record(new Gen(seed));
      const want = pack(unpack(bytes));
      if (isCanonical(bytes, 0, bytes.length)) {
        assert.ok(bytes.equals(want), `seed ${seed}: ${bytes.toString('hex')} is not canonical`);
        already++;
      }
      const out = new JsonBuffer(16);
      out.ascii('>');
      const end = writeCanonical(out, bytes, 0, bytes.length);
      if (end === UNSURE) {
        assert.equal(out.n, 1, 'left as it was');
        continue;
      }
      assert.equal(end, bytes.length);
      assert.ok(out.view().subarray(1).equals(want), `seed ${seed}: ${bytes.toString('hex')}`);
      written++;
    }
    // Both answers are exercised: most generated records hold something only decoding settles.
    assert.ok(written > 3000 && already > 300, `${written} written, ${already} already canonical`);
  });

  it('takes what msgpackr and msgpack-c write as it is', () => {
    for (let i = 0; i < 200; i++) {
      const bytes = benchRecord(new Gen(i), i);
      assert.ok(isCanonical(bytes, 0, bytes.length));
    }
    // msgpack-c: fixmap, str8 from 32 bytes, uint8 from 128, float64.
    const c = Buffer.from(`83a16ecc80a166cb4029000000000000a173d920${'61'.repeat(32)}`, 'hex');
    assert.ok(isCanonical(c, 0, c.length));
  });

  it('gives ids equal to documentId of the decoded entry', () => {
    const ids = new DocumentIds();
    for (let seed = 1; seed <= 400; seed++) {
      for (const batch of batches(seed, 6)) {
        const cursor = new EntryCursor(batch.payload);
        while (cursor.next()) {
          const out = new JsonBuffer(8);
          ids.write(out, batch.tag, cursor);
          assert.equal(out.view().toString(), documentId(cursor.decode(batch.tag)), `seed ${seed}`);
        }
      }
    }
  });
});
