import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventTime } from '../../src/core/event-time.ts';
import { parseTime } from '../../src/core/parse-time.ts';

describe('parseTime', () => {
  it('reads microseconds and nanoseconds by magnitude, exactly from text', () => {
    assert.deepEqual(parseTime(1700000000123456), new EventTime(1700000000, 123456000));
    assert.deepEqual(parseTime('1700000000123456789'), new EventTime(1700000000, 123456789));
  });

  it('refuses what an EventTime cannot hold', () => {
    assert.equal(parseTime(2 ** 32), undefined);
    assert.equal(parseTime(Number.NaN), undefined);
    assert.equal(parseTime('2024-13-45T00:00:00Z'), undefined);
    assert.equal(parseTime(null), undefined);
  });
});
