import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileOnigmo } from '../../../src/core/onigmo.ts';
import { assertUnparsed, errorsOf, iso, parseLine } from './helpers.ts';

/** The named groups of a translated Ruby expression on `text`, helpers left out; null: no match. */
function groups(expression: string, text: string): Record<string, string | undefined> | null {
  const { regex, names } = compileOnigmo(expression);
  const m = regex.exec(text);
  return m && Object.fromEntries(names.map((n) => [n, m.groups![n]]));
}

describe('format regexp: Onigmo expressions as written in Fluentd configs', () => {
  it("Fluentd's regexp docs example: time_key, time_format with %z, types", () => {
    const e = parseLine(
      'regexp',
      '[2013-02-28 12:00:00 +0900] alice engineer 1',
      `    expression: '/^\\[(?<logtime>[^\\]]*)\\] (?<name>[^ ]*) (?<title>[^ ]*) (?<id>\\d*)$/'
    time_key: logtime
    time_format: "%Y-%m-%d %H:%M:%S %z"
    types: id:integer
`,
    );
    assert.deepEqual(e.record, { name: 'alice', title: 'engineer', id: 1 });
    assert.equal(iso(e.time), '2013-02-28T03:00:00.000000000Z');
  });

  it("Fluentd's apache expression (its docs) reads as in Ruby", () => {
    const e = parseLine(
      'regexp',
      '192.168.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777',
      `    expression: '/^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^ ]*) +\\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)$/'
    time_format: "%d/%b/%Y:%H:%M:%S %z"
    types: code:integer,size:integer
`,
    );
    assert.deepEqual(e.record, {
      host: '192.168.0.1',
      user: '-',
      method: 'GET',
      path: '/',
      code: 200,
      size: 777,
    });
    assert.equal(iso(e.time), '2013-02-28T03:00:00.000000000Z');
  });

  it('/m is dotall; without it . stops at a newline; ^ and $ are line anchors, \\A \\z the text', () => {
    const multi =
      '/^(?<time>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}) \\[(?<thread>[^\\]]*)\\] (?<level>[^\\s]+)(?<message>.*)/m';
    const trace = '2024-01-15 10:30:00 [main] ERROR boom\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)';
    assert.equal(groups(multi, trace)?.message, ' boom\n\tat a.b(C.java:1)\n\tat d.e(F.java:2)');
    assert.equal(groups(multi.replace(/m$/, ''), trace)?.message, ' boom');
    // Ruby's ^ matches after any newline; \A only at the start.
    assert.deepEqual(groups('/^(?<w>b)/', 'a\nb'), { w: 'b' });
    assert.equal(groups('/\\A(?<w>b)/', 'a\nb'), null);
    assert.equal(groups('/(?<w>a)\\z/', 'a\n'), null);
    assert.deepEqual(groups('/(?<w>a)\\Z/', 'a\n'), { w: 'a' });
    // Ruby's . takes \r, which JS's would not.
    assert.deepEqual(groups('/^(?<w>.+)$/', 'a\rb'), { w: 'a\rb' });
  });

  it("\\h, POSIX brackets, /i, inline (?i) to the end of its group, /x with comments, (?<name>) and (?'name')", () => {
    assert.deepEqual(groups('/^(?<id>\\h{8})-(?<n>[[:digit:]]+)$/', 'deadBEEF-42'), {
      id: 'deadBEEF',
      n: '42',
    });
    assert.equal(groups('/^(?<id>\\h+)$/', 'xyz'), null);
    assert.deepEqual(groups('/^(?<l>error|warn)/i', 'ERROR x'), { l: 'ERROR' });
    // Onigmo: (?i) runs to the end of the group, taking the alternative with it.
    assert.deepEqual(groups('/^a(?i)(?<l>b|c)$/', 'aC'), { l: 'C' });
    assert.equal(groups('/^a(?i)(?<l>b|c)$/', 'AC'), null);
    assert.deepEqual(groups('/(?i:(?<x>ab))c/', 'ABc'), { x: 'AB' });
    const extended = `/^(?<k> [a-z]+ )  # the key
      = (?'v'\\d+)  # the value
    $/x`;
    assert.deepEqual(groups(extended, 'port=80'), { k: 'port', v: '80' });
    assert.deepEqual(groups("/^(?<a>.)\\k<a>\\k'a'$/", 'xxx'), { a: 'x' });
  });

  it('possessive quantifiers and atomic groups do not give back, as in Ruby', () => {
    // a*+ takes every a, so the a after it never matches.
    assert.equal(groups('/^(?<x>a*+)a/', 'aaa'), null);
    assert.deepEqual(groups('/^(?<x>a*)a/', 'aaa'), { x: 'aa' });
    assert.equal(groups('/^(?<x>(?>a+))a/', 'aaa'), null);
    assert.deepEqual(groups('/^(?<x>(?>a+))b/', 'aab'), { x: 'aa' });
    assert.deepEqual(groups('/^(?<w>\\w++)(?<rest>.*)$/', 'abc def'), { w: 'abc', rest: ' def' });
    assert.deepEqual(groups('/^(?<d>\\d?+)x/', '7x'), { d: '7' });
    // Ruby's {n}+ repeats the interval: (?:a{2})+.
    assert.deepEqual(groups('/^(?<x>a{2}+)$/', 'aaaa'), { x: 'aaaa' });
    assert.equal(groups('/^(?<x>a{2}+)$/', 'aaa'), null);
    // `X{n}?` is `(?:X{n})?` in Ruby (optional), not a lazy exact count.
    assert.deepEqual(groups('/^(?<x>a{2}?)(?<y>b)/', 'b'), { x: '', y: 'b' });
    // {,n} is {0,n}; a brace that opens no interval is a brace.
    assert.deepEqual(groups('/^(?<x>a{,2})(?<y>{x})$/', 'aa{x}'), { x: 'aa', y: '{x}' });
    // Helper groups never reach the record.
    const e = parseLine('regexp', 'abc', "    expression: '/^(?<w>(?>\\w+))$/'\n");
    assert.deepEqual(e.record, { w: 'abc' });
  });

  it('a group that took no part is left out; a line that does not match passes unchanged', () => {
    const e = parseLine('regexp', 'GET', "    expression: '/^(?<method>\\S+)(?: (?<path>\\S+))?$/'\n");
    assert.deepEqual(e.record, { method: 'GET' });
    assertUnparsed('regexp', 'no digits', "    expression: '^(?<n>\\d+)$'\n");
  });

  it('what has no JavaScript form is refused at startup with file, line, key and what it is', () => {
    const cases: [string, RegExp][] = [
      ['/\\G(?<a>x)/', /\\G \(match start anchor\) at character 2 has no JavaScript equivalent/],
      ['/(?<a>x)\\Ky/', /\\K \(keep\)/],
      ['/(?<a>\\p{NoSuchThing})/', /the property \\p\{NoSuchThing\}/],
      ['/(?<a>x)\\g<a>/', /subexpression call/],
      ['/(?<a>x)(?~abc)/', /absent operator/],
      ['/(?<a>x)(?(<a>)y|z)/', /conditional/],
      ['/(?<a>[a-z&&[^q]])/', /class intersection/],
      ['/(?<a>x)\\1/', /numbered back-reference \\1 \(use a named group\)/],
      ['/(?<a>[[:nope:]])/', /the POSIX bracket \[:nope:\]/],
      ['/(?<a>x/', /missing \)/],
      ['/^(\\d+)$/', /no named group/],
      ['/(?<a>x)(?<a>y)/', /Duplicate capture group name/],
    ];
    for (const [expression, message] of cases) {
      const errors = errorsOf(`    key_name: log\n    format: regexp\n    expression: '${expression}'\n`);
      assert.equal(errors.length, 1, errors.join('\n'));
      assert.match(errors[0]!, /^f\.yaml:5: filters\[0\]\.expression: /, errors[0]);
      assert.match(errors[0]!, message, errors[0]);
    }
  });
});
