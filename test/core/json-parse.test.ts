import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseJson } from '../../src/core/json-parse.ts';

describe('parseJson', () => {
  it('reads an escaped key as sent, after a key holding a backslash (V8 gets this wrong)', () => {
    assert.deepEqual(Object.keys(parseJson('{"k\\\\":1}') as object), ['k\\']);
    assert.deepEqual(Object.keys(parseJson('{"k\\t":1}') as object), ['k\t']);
    assert.deepEqual(parseJson('[{"a\\"b":{"c\\n":[1,"x\\\\"]}}, 2]'), [{ 'a"b': { 'c\n': [1, 'x\\'] } }, 2]);
  });

  it('keeps __proto__ an own key, as JSON.parse does, and refuses what JSON.parse refuses', () => {
    const value = parseJson('{"__proto__\\u0000":1,"__proto__":2}') as Record<string, unknown>;
    assert.equal(Object.getOwnPropertyDescriptor(value, '__proto__')?.value, 2);
    assert.throws(() => parseJson('{"a\\":1}'), SyntaxError);
  });
});
