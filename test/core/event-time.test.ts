import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEntries, makeBatch, toEventTime } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { eventTimeBytes, pack, unpack } from '../../src/core/msgpack.ts';

describe('EventTime', () => {
  it('encodes as msgpack fixext8 type 0 with big-endian seconds and nanoseconds', () => {
    const bytes = eventTimeBytes(new EventTime(0x65432100, 999_999_999));
    assert.equal(bytes.toString('hex'), 'd7006543210' + '03b9ac9ff');
  });

  it('round-trips nanoseconds exactly through a batch', () => {
    const time = new EventTime(1_700_000_000, 123_456_789);
    const [entry] = decodeEntries(makeBatch('t', [{ time, record: { a: 1 } }]).payload);
    assert.ok(entry!.time instanceof EventTime);
    assert.deepEqual([entry!.time.sec, entry!.time.nsec], [1_700_000_000, 123_456_789]);
  });

  it('decodes ext type 0 inside any msgpack value', () => {
    const raw = Buffer.concat([Buffer.from([0x92]), eventTimeBytes(new EventTime(5, 6)), pack({ k: 'v' })]);
    const [t, r] = unpack(raw) as [EventTime, unknown];
    assert.deepEqual([t.sec, t.nsec, r], [5, 6, { k: 'v' }]);
  });

  it('prints RFC 3339 with nine fractional digits', () => {
    assert.equal(new EventTime(1_700_000_000, 5).toIso(), '2023-11-14T22:13:20.000000005Z');
  });

  it('parses ISO 8601 keeping all fractional digits and honouring offsets', () => {
    const t = EventTime.parseIso('2023-11-14T22:13:20.123456789Z')!;
    assert.deepEqual([t.sec, t.nsec], [1_700_000_000, 123_456_789]);
    const z = EventTime.parseIso('2023-11-15T00:13:20.5+02:00')!;
    assert.deepEqual([z.sec, z.nsec], [1_700_000_000, 500_000_000]);
    const sql = EventTime.parseIso('2023-11-14 22:13:20.000001')!;
    assert.deepEqual([sql.sec, sql.nsec], [1_700_000_000, 1000]);
    assert.equal(EventTime.parseIso('yesterday'), undefined);
  });

  it('takes fractional seconds to microsecond precision without float noise', () => {
    const t = EventTime.fromSeconds(1_700_000_000.123456);
    assert.deepEqual([t.sec, t.nsec], [1_700_000_000, 123_456_000]);
    assert.deepEqual(toEventTime(1_700_000_000), new EventTime(1_700_000_000, 0));
    assert.equal(toEventTime('1'), undefined);
  });

  it('now() is close to the wall clock', () => {
    assert.ok(Math.abs(EventTime.now().toMillis() - Date.now()) < 50);
  });
});
