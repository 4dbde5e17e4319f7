import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { buildParser } from '../../../src/filters/parser/build.ts';
import { ruby } from './helpers.ts';

/**
 * nginx lines read by Fluentd 1.15.3's own parser (../shared/interop/fluentd), whose request
 * part is the regex of Fluent Bit's parsers.conf that Estuary splits without regex, and by
 * ours: the fields must agree. Fluentd's own additions are mapped first: it makes integers of
 * code and size, nil of a `-` size, and has an http_x_forwarded_for (lines here carry none).
 * Where that regex runs past the closing quote of a one-word request, the lines are named and
 * ours must read them right.
 */
const FLUENTD_LIB = resolve(process.env.FLUENTD_LIB ?? '../shared/interop/fluentd/lib');

const REQUESTS = [
  'GET / HTTP/1.1',
  'GET /api/v1/users?id=5&sort=desc HTTP/2.0',
  'GET /a b HTTP/1.1',
  'GET /only-path',
  'GET',
  'GET  /double  HTTP/1.0',
  'GET /trailing ',
  'GET /x HTTP/1.1 extra words',
  'OPTIONS * HTTP/1.1',
  '\\x16\\x03\\x01\\x00',
  '-',
  'GET /a\tb HTTP/1.1',
  'GET\t/tab HTTP/1.1',
  ' GET /leading-space',
  '',
];
const LINES = REQUESTS.flatMap((request) => [
  `203.0.113.7 - alice [10/Oct/2023:13:55:36 +0200] "${request}" 200 1534 "https://example.com/" "Mozilla/5.0 (X11)"`,
  `203.0.113.7 - - [10/Oct/2023:13:55:36 -0700] "${request}" 400 - `.trimEnd(),
]);

const RUBY = `
$LOAD_PATH.unshift(ARGV[0])
require 'json'
require 'fluent/config'
require 'fluent/plugin'
require 'fluent/engine'
require 'fluent/plugin/parser_nginx'
lines = JSON.parse(STDIN.read)
out = %w[nginx].to_h do |type|
  parser = Fluent::Plugin.new_parser(type)
  parser.configure(Fluent::Config::Element.new('parse', '', {}, []))
  [type, lines.map { |line|
    result = nil
    parser.parse(line) { |time, record| result = record && { 'time' => time.to_i, 'record' => record } }
    result
  }]
end
puts JSON.generate(out)
`;

interface Read {
  time: number;
  record: Record<string, unknown>;
}

describe('nginx agrees with Fluentd', () => {
  it("every line's fields and time are Fluentd's, or both refuse it", (t) => {
    if (!existsSync(FLUENTD_LIB)) {
      t.skip(`no Fluentd source tree at ${FLUENTD_LIB} (set FLUENTD_LIB)`);
      return;
    }
    const fluentd = ruby<Record<string, (Read | null)[]>>(t, RUBY, LINES, [FLUENTD_LIB]);
    if (!fluentd) return;
    const mismatches: string[] = [];
    const crossed: string[] = [];
    const parse = buildParser({ format: 'nginx' } as Parameters<typeof buildParser>[0]);
    LINES.forEach((line, i) => {
      const parsed = parse(line);
      const ours = parsed ? { time: parsed.time?.sec, record: parsed.values } : null;
      const theirs = fluentd.nginx![i]!;
      if (line.includes('] "" ')) {
        // A request nginx logs empty: no method or path, the rest read (Fluent Bit refuses or misreads the line).
        assert.equal(ours?.record.method, undefined, line);
        assert.equal(ours?.record.code, line.includes('" 200 ') ? '200' : '400', line);
        return;
      }
      if (typeof theirs?.record.method === 'string' && theirs.record.method.includes('"')) {
        crossed.push(line);
        assert.equal(ours?.record.code, line.includes('" 200 ') ? '200' : '400', line);
        return;
      }
      const expected = theirs && {
        time: theirs.time,
        record: Object.fromEntries(
          Object.entries(theirs.record)
            // Fluentd gives a group that took no part as nil; ours leaves it out.
            .filter(([, v]) => v !== null)
            .map(([k, v]) => [k, typeof v === 'number' ? String(v) : v]),
        ),
      };
      // Fluentd makes nil of a `-` size; the line had `-` there.
      if (expected && theirs?.record.size === null) expected.record.size = '-';
      try {
        assert.deepEqual(ours, expected);
      } catch {
        mismatches.push(
          `${JSON.stringify(line)}: Fluentd ${JSON.stringify(expected)}, ours ${JSON.stringify(ours)}`,
        );
      }
    });
    assert.deepEqual(mismatches, []);
    // The one-word requests followed by referer and agent.
    assert.deepEqual(
      crossed.map((line) => /"([^"]*)" 200/.exec(line)?.[1]),
      ['GET', '\\x16\\x03\\x01\\x00', '-'],
    );
  });
});
