import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileOnigmo } from '../../../src/core/onigmo.ts';
import { ruby } from './helpers.ts';

/**
 * The translation checked against Onigmo itself: Ruby (as Fluentd runs it, from
 * ../shared/interop/install-fluentd-deps.sh) matches the same expressions on the same texts,
 * and the named captures must agree, a group that took no part included.
 */
const CASES: [string, string[]][] = [
  // Fluentd's docs: parser regexp, apache, a multi-line Java log.
  [
    '/^\\[(?<logtime>[^\\]]*)\\] (?<name>[^ ]*) (?<title>[^ ]*) (?<id>\\d*)$/',
    ['[2013-02-28 12:00:00 +0900] alice engineer 1', 'junk\n[t] bob admin 22\nmore', '[t] a b c'],
  ],
  [
    '/^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "(?<method>\\S+)(?: +(?<path>[^ ]*) +\\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)$/',
    ['192.168.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777', '1.2.3.4 - - [x] "GET" 400 0'],
  ],
  [
    '/^(?<time>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}) \\[(?<thread>[^\\]]*)\\] (?<level>[^\\s]+)(?<message>.*)/m',
    ['2024-01-15 10:30:00 [main] ERROR boom\n\tat a.b(C.java:1)\n', '2024-01-15 10:30:00 [main] INFO ok'],
  ],
  [
    '/^(?<time>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}) \\[(?<thread>[^\\]]*)\\] (?<level>[^\\s]+)(?<message>.*)/',
    ['2024-01-15 10:30:00 [main] ERROR boom\n\tat a.b(C.java:1)\n'],
  ],
  // Anchors, dot, newlines and carriage returns.
  ['/\\A(?<id>\\h{8})-(?<rest>.*+)\\z/', ['deadBEEF-x y', 'deadBEEF-x\n', 'zzzzzzzz-x', 'a\ndeadbeef-x']],
  ['/(?<w>a)\\Z/', ['a\n', 'a', 'a\n\n']],
  ['/(?<w>a)$/', ['a\nb', 'ab', 'a\r\n']],
  ['/^(?<w>.+)$/', ['a\rb', 'é ü', 'x\ny']],
  ['/(?<w>\\w+)\\s(?<r>\\R)/', ['ab \r\n', 'ab \n', 'ab x']],
  // Possessive, atomic, intervals.
  ['/^(?<x>a*+)a/', ['aaa', 'b']],
  ['/^(?<x>(?>a+))(?<y>b?)/', ['aab', 'aaa']],
  ['/^(?<w>\\w++)(?<rest>.*)$/', ['abc def']],
  ['/^(?<d>\\d?+)x/', ['7x', 'x', '77x']],
  ['/^(?<x>a{2}+)$/', ['aaaa', 'aaa', 'aa']],
  ['/^(?<x>a{2}?)(?<y>b)/', ['b', 'aab', 'ab']],
  ['/^(?<x>a{,2})(?<y>{x})$/', ['aa{x}', 'aaa{x}', '{x}']],
  ['/^(?<x>(?:ab){1,2}?)(?<y>.*)$/', ['ababab']],
  // Options: /i, inline (?i) to the end of its group, (?m:), (?-i:), /x.
  ['/(?<l>error|warn)/i', ['An ERROR here', 'Warning', 'info']],
  ['/^a(?i)(?<l>b|c)$/', ['aC', 'AC', 'ab', 'c']],
  ['/(?<m>(?m:.+))/', ['a\nb']],
  ['/(?<m>(?-i:a)B)/i', ['aB', 'ab', 'Ab']],
  ["/^(?<k> [a-z]+ )  # the key\n  = (?'v'\\d+)  # the value\n$/x", ['port=80', 'port = 80']],
  // Classes: \h, POSIX brackets, a leading ], escapes.
  ['/^(?<k>[[:alpha:]]+)=(?<v>[[:digit:][:punct:]]+)$/', ['key=1.5%', 'Key=1,000', 'k=x']],
  ['/^(?<s>[[:space:]]+)(?<u>[[:upper:]][[:lower:]]*)$/', ['  Hello', '\tX']],
  ['/^(?<p>[^]x]+)$/', ['a]b', 'axb']],
  // Unicode: POSIX brackets and \p{…} are Unicode in Ruby, \s and \w are ASCII.
  [
    '/^(?<a>[[:alpha:]]+) (?<d>[[:digit:]]+) (?<n>[[:^alpha:]]+)$/',
    ['héllo ٣4 1-2', 'Straße 7 ?!', 'ab 1 c'],
  ],
  ['/^(?<w>[[:word:][:punct:]]+)$/', ['naïve_δ+1', 'a b']],
  ['/^(?<u>[[:upper:]])(?<l>[[:lower:]]+)(?<s>[[:space:]]*)$/', ['Ångström\u2003', 'Éa']],
  ['/(?<l>\\p{L}+)\\P{L}(?<g>\\p{Greek}+)(?<k>\\p{^Alpha}*)$/', ['Ωmega αβγ!!', 'ab cd']],
  ['/(?<h>\\p{Han}+)(?<x>[\\p{Hiragana}\\p{Katakana}]*)/', ['ログ漢字ひらがなカタ']],
  ['/^(?<s>\\s)(?<t>[\\S]+)$/', ['\u00a0x', ' x\u00a0', '\vx']],
  ['/^(?<w>\\w+)/', ['héllo', 'año']],
  ['/^(?<h>[\\h_]+)$/', ['00ff_AB', 'g']],
  ['/^(?<q>"[^"\\\\]*(?:\\\\.[^"\\\\]*)*")\\s*(?<rest>.*)$/', ['"a \\" b" tail', '"open']],
  ['/(?<e>\\e\\[\\d+m)(?<t>[^\\e]*)/', ['\u001b[31mred\u001b[0m']],
  ['/(?<c>\\u{263a}|\\u263b)/', ['smile ☺', 'frown ☻']],
  // Back-references by name, lookarounds, alternation with a group that takes no part.
  ['/^(?<a>.)\\k<a>$/', ['xx', 'xy']],
  ["/^(?<a>.)\\k'a'$/", ['yy']],
  ['/(?<n>\\d+)(?= ms)/', ['took 12 ms', 'took 12 s']],
  ['/(?<=id=)(?<id>\\w+)/', ['user id=abc9 ok']],
  ['/^(?:(?<num>\\d+)|(?<word>[a-z]+))$/', ['42', 'abc', '4b']],
  ['/^(?<all>(?#a comment)x)$/', ['x']],
];

type Captures = Record<string, string | null> | null;

const RUBY = String.raw`
require 'json'
cases = JSON.parse(STDIN.read)
out = cases.map do |expr, texts|
  m = expr.match(%r{\A/(.*)/([imx]*)\z}m)
  opts = 0
  opts |= Regexp::IGNORECASE if m[2].include?('i')
  opts |= Regexp::EXTENDED if m[2].include?('x')
  opts |= Regexp::MULTILINE if m[2].include?('m')
  re = Regexp.new(m[1], opts)
  texts.map { |t| md = re.match(t); md && md.named_captures }
end
puts JSON.generate(out)
`;

function ours(expression: string, text: string): Captures {
  const { regex, names } = compileOnigmo(expression);
  const m = regex.exec(text);
  return m && Object.fromEntries(names.map((n) => [n, m.groups![n] ?? null]));
}

describe('Onigmo translation agrees with Ruby', () => {
  it('named captures of every case are those Ruby gives', (t) => {
    const expected = ruby<Captures[][]>(t, RUBY, CASES);
    if (!expected) return;
    const mismatches: string[] = [];
    CASES.forEach(([expression, texts], i) => {
      texts.forEach((text, j) => {
        const got = ours(expression, text);
        try {
          assert.deepEqual(got, expected[i]![j]);
        } catch {
          mismatches.push(
            `${expression} on ${JSON.stringify(text)}: Ruby ${JSON.stringify(expected[i]![j])}, ours ${JSON.stringify(got)}`,
          );
        }
      });
    });
    assert.deepEqual(mismatches, []);
  });
});
