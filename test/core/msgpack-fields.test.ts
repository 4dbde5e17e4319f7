import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pack } from '../../src/core/msgpack.ts';
import { keyPath, mapGet, pathGet, valueAt } from '../../src/core/msgpack-fields.ts';

describe('record fields from msgpack bytes', () => {
  const record = pack({ log: 'hi', kubernetes: { labels: { app: 'web', n: 3 } }, big: 2n ** 64n - 1n });

  it('finds a key, a path, and decodes the value there', () => {
    const at = mapGet(record, 0, record.length, Buffer.from('log'));
    assert.equal(valueAt(record, at, record.length), 'hi');
    const app = pathGet(record, 0, record.length, keyPath(['kubernetes', 'labels', 'app']));
    assert.equal(valueAt(record, app, record.length), 'web');
    const labels = pathGet(record, 0, record.length, keyPath(['kubernetes', 'labels']));
    assert.deepEqual(valueAt(record, labels, record.length), { app: 'web', n: 3 });
    assert.equal(
      valueAt(record, mapGet(record, 0, record.length, Buffer.from('big')), record.length),
      2n ** 64n - 1n,
    );
  });

  it('says -1 for what is not there, or not a map', () => {
    assert.equal(mapGet(record, 0, record.length, Buffer.from('lo')), -1);
    assert.equal(pathGet(record, 0, record.length, keyPath(['log', 'x'])), -1);
    assert.equal(pathGet(record, 0, record.length, keyPath(['kubernetes', 'nope', 'app'])), -1);
  });

  it('takes the last of a repeated key, as the decoded record does', () => {
    // {"a":1,"a":2}
    const dup = Buffer.from('82a16101a16102', 'hex');
    assert.equal(valueAt(dup, mapGet(dup, 0, dup.length, Buffer.from('a')), dup.length), 2);
  });
});
