import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventTime } from '../../../src/core/event-time.ts';
import { compileStrptime, parseOffset } from '../../../src/filters/parser/strptime.ts';
import { parseTypes } from '../../../src/filters/parser/value-types.ts';
import { BEFORE, errorsOf, iso, parseLine } from './helpers.ts';

const read = (format: string, text: string, offset = 0) => {
  const t = compileStrptime(format, offset)(text);
  return t && iso(t);
};

describe('strptime', () => {
  it('reads the directives Fluentd and Fluent Bit configs use', () => {
    assert.equal(
      read('%d/%b/%Y:%H:%M:%S %z', '10/Oct/2000:13:55:36 -0700'),
      '2000-10-10T20:55:36.000000000Z',
    );
    assert.equal(
      read('%Y-%m-%dT%H:%M:%S.%L%z', '2024-01-15T10:30:00.123456789Z'),
      '2024-01-15T10:30:00.123456789Z',
    );
    assert.equal(
      read('%Y-%m-%dT%H:%M:%S.%N%:z', '2024-01-15T10:30:00.5+05:30'),
      '2024-01-15T05:00:00.500000000Z',
    );
    assert.equal(read('%Y-%m-%d %H:%M:%S,%f', '2024-01-15 10:30:00,042'), '2024-01-15T10:30:00.042000000Z');
    assert.equal(read('%F %T %Z', '2024-01-15 10:30:00 UTC'), '2024-01-15T10:30:00.000000000Z');
    assert.equal(read('%F %T %Z', '2024-01-15 10:30:00 +0100'), '2024-01-15T09:30:00.000000000Z');
    assert.equal(read('%a %b %e %H:%M:%S %Y', 'Mon Jan  5 10:30:00 2024'), '2024-01-05T10:30:00.000000000Z');
    assert.equal(
      read('%A, %B %d %Y %I:%M %p', 'Monday, January 15 2024 02:05 PM'),
      '2024-01-15T14:05:00.000000000Z',
    );
    assert.equal(read('%I:%M %p %D', '12:00 AM 01/15/24'), '2024-01-15T00:00:00.000000000Z');
    // A time of day alone is today's, as Ruby reads it.
    assert.equal(
      read('%H:%M:%S', '01:02:03'),
      `${new Date().toISOString().slice(0, 10)}T01:02:03.000000000Z`,
    );
    assert.equal(read('%Y %j %H', '2024 060 01'), '2024-02-29T01:00:00.000000000Z');
    assert.equal(read('%s.%N', '1700000000.000000001'), '2023-11-14T22:13:20.000000001Z');
    assert.equal(read('%y%m%d %R', '991231 23:59'), '1999-12-31T23:59:00.000000000Z');
    assert.equal(
      read('%Y-%m-%d %H:%M:%S', '2024-01-15 10:30:00', parseOffset('+09:00')),
      '2024-01-15T01:30:00.000000000Z',
    );
  });

  it('refuses what is not a time of the format', () => {
    assert.equal(read('%Y-%m-%d', '2023-02-29'), undefined, 'no 29 Feb in 2023');
    assert.equal(read('%Y-%m-%d', '2024-13-01'), undefined);
    assert.equal(read('%H:%M:%S', '24:00:00'), undefined);
    assert.equal(read('%Y-%m-%d', '2024-01-15 trailing'), undefined);
    assert.equal(read('%b %d', 'Foo 12'), undefined);
    assert.equal(read('%z', '+2500'), undefined);
    assert.throws(() => compileStrptime('%Y %Q'), /unsupported directive %Q/);
    assert.throws(() => parseOffset('CEST'), /expected an offset/);
  });
});

describe('time options of the parser filter', () => {
  it('time_type float and unixtime; a time that does not read stays a field and the entry keeps its time', () => {
    const f = parseLine(
      'json',
      '{"ts":"1700000000.123456789","a":1}',
      '    time_key: ts\n    time_type: float\n',
    );
    assert.equal(iso(f.time), '2023-11-14T22:13:20.123456789Z');
    assert.deepEqual(f.record, { a: 1 });
    const u = parseLine(
      'json',
      '{"ts":1700000000.9}',
      '    time_key: ts\n    time_type: unixtime\n    time_keep: true\n',
    );
    assert.equal(iso(u.time), '2023-11-14T22:13:20.000000000Z');
    assert.deepEqual(u.record, { ts: 1700000000.9 });
    const bad = parseLine('json', '{"time":"yesterday","a":1}');
    assert.equal(bad.time, BEFORE);
    assert.deepEqual(bad.record, { time: 'yesterday', a: 1 });
    const none = parseLine('json', '{"a":1}');
    assert.equal(none.time, BEFORE);
    // Without time_format: RFC 3339, or unix seconds / milliseconds by magnitude.
    assert.equal(iso(parseLine('json', '{"time":1700000000123}').time), '2023-11-14T22:13:20.123000000Z');
    // time_format on a named format replaces its own.
    const own = parseLine('cri', '15/01/2024-10:30:00 stdout F x', '    time_format: "%d/%m/%Y-%H:%M:%S"\n');
    assert.equal(iso(own.time), '2024-01-15T10:30:00.000000000Z');
  });
});

describe('types', () => {
  it("Fluentd's string form, Fluent Bit's spaced form and the map form convert parsed fields", () => {
    const e = parseLine(
      'logfmt',
      'status=503 latency=0.25 ok=yes tags=a,b at=15/Jan/2024 big=9223372036854775807 flags=ff bad=x name=7',
      '    types: "status:integer,latency:float,ok:bool,tags:array,at:time:%d/%b/%Y,big:integer,flags:hex,bad:integer,name:string"\n',
    );
    assert.deepEqual(e.record, {
      status: 503,
      latency: 0.25,
      ok: true,
      tags: ['a', 'b'],
      at: new EventTime(1_705_276_800, 0),
      big: 9223372036854775807n,
      flags: 255,
      bad: null,
      name: '7',
    });
    const spaced = parseLine('logfmt', 'code=200 size=5', '    types: "code:integer size:integer"\n');
    assert.deepEqual(spaced.record, { code: 200, size: 5 });
    const map = parseLine('logfmt', 'tags=a|b ok=no', '    types: { tags: "array:|", ok: bool }\n');
    assert.deepEqual(map.record, { tags: ['a', 'b'], ok: false });
    // A field the line lacks stays absent (a name the prototype has too), null stays null.
    const inherited = parseLine('logfmt', 'a=1', '    time_key: constructor\n    types: toString:integer\n');
    assert.deepEqual(inherited.record, { a: '1' });
    assert.equal(inherited.time, BEFORE);
    assert.deepEqual(parseLine('json', '{"n":null}', '    types: n:integer,m:integer\n').record, { n: null });
  });

  it('time types take unixtime, float, a format and a zone', () => {
    const t = parseTypes('a:time:unixtime,b:time:float,c:time:+09:00:%Y-%m-%d %H:%M,d:time');
    assert.deepEqual(t.get('a')!('1700000000'), new EventTime(1_700_000_000, 0));
    assert.deepEqual(t.get('b')!(1700000000.5), new EventTime(1_700_000_000, 500_000_000));
    assert.deepEqual(t.get('c')!('2024-01-15 09:00'), new EventTime(1_705_276_800, 0));
    assert.deepEqual(t.get('d')!('2024-01-15T00:00:00Z'), new EventTime(1_705_276_800, 0));
    assert.equal(t.get('d')!('never'), null);
  });

  it('a types entry it cannot read is a config error with its place', () => {
    const errors = errorsOf('    key_name: log\n    format: json\n    types: "a:integer,b:number"\n');
    assert.deepEqual(errors, [
      'f.yaml:5: filters[0].types: b: unknown type "number" (expected string, integer, float, bool, time, array, hex)',
    ]);
    assert.match(
      errorsOf('    key_name: log\n    format: json\n    types: "status"\n')[0]!,
      /types: expected name:type, got "status"/,
    );
  });
});
