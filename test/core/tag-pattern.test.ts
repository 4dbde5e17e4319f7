import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TagPattern } from '../../src/core/tag-pattern.ts';

// Fluentd's documented examples ("Config File Syntax: How do the match patterns work?") and
// the cases its test_match.rb pins down.
const table: [pattern: string, matches: string[], misses: string[]][] = [
  ['a', ['a'], ['b', 'a.b', 'aa']],
  ['a.*', ['a.b', 'a.c'], ['a', 'a.b.c', 'ab.c']],
  ['a.**', ['a', 'a.b', 'a.b.c'], ['ab', 'ab.c', 'b.a']],
  ['**', ['a', 'a.b', 'a.b.c', ''], []],
  ['*', ['a', 'abc'], ['a.b']],
  ['**.b', ['b', 'a.b', 'x.y.b'], ['a.bb', 'ab']],
  ['a.**.c', ['a.c', 'a.b.c', 'a.b.d.c'], ['a.bc', 'ac', 'a.b.cd']],
  ['{a,b}', ['a', 'b'], ['c', 'a.b']],
  ['a.{b,c}.*', ['a.b.x', 'a.c.y'], ['a.d.x', 'a.b']],
  ['a.{b,c.**}', ['a.b', 'a.c', 'a.c.d.e'], ['a.d', 'a.b.c']],
  ['{a,b}.**', ['a', 'b.x.y'], ['c.a']],
  ['/(?!a\\.).*/', ['b.c', 'ab'], ['a.b']],
  ['a b', ['a', 'b'], ['c', 'a.b']],
  ['a.** b.*', ['a', 'a.b', 'a.b.c', 'b.d'], ['b', 'b.d.e', 'c']],
  [
    'kube.var.log.containers.*',
    ['kube.var.log.containers.web-1_ns_app'],
    ['kube.var.log', 'kube.var.log.containers.web-1_ns_app-abc.log'],
  ],
  ['kube.**', ['kube.var.log.containers.web-1_ns_app-abc.log'], ['kubernetes.x']],
  ['a\\.b', ['a.b'], ['axb']],
  ['a.b', ['a.b'], ['axb', 'a.bc']],
];

describe('TagPattern', () => {
  for (const [pattern, matches, misses] of table) {
    it(`${pattern} matches ${matches.join(', ') || '—'} and not ${misses.join(', ') || '—'}`, () => {
      const p = new TagPattern(pattern);
      for (const tag of matches) assert.equal(p.matches(tag), true, `${pattern} should match ${tag}`);
      for (const tag of misses) assert.equal(p.matches(tag), false, `${pattern} should not match ${tag}`);
    });
  }

  it('rejects an empty pattern and an unterminated regex', () => {
    assert.throws(() => new TagPattern('  '), /empty/);
    assert.throws(() => new TagPattern('/abc'), /invalid regex/);
  });
});
