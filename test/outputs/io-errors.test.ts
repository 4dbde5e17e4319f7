import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HaltError, RejectError, RetryableError } from '../../src/core/errors.ts';
import { classifyIoError } from '../../src/outputs/io-errors.ts';

const failure = (code: string) => Object.assign(new Error(`${code}: something`), { code });
const kind = (code: string, pathFromRecord = false) =>
  classifyIoError(failure(code), 'writing /x', { pathFromRecord }).name;

describe('local write failures', () => {
  it('halt when the sink refuses everything until an operator fixes it', () => {
    for (const code of ['EACCES', 'EPERM', 'EROFS', 'EPIPE', 'ERR_STREAM_DESTROYED']) {
      assert.equal(kind(code), 'HaltError', code);
      assert.equal(kind(code, true), 'HaltError', `${code}, path from a tag`);
    }
  });

  it('a path that cannot be a file: halt when configured, reject when the record’s tag made it', () => {
    for (const code of ['EISDIR', 'ENOTDIR', 'EEXIST', 'ELOOP', 'ENAMETOOLONG', 'EINVAL']) {
      assert.equal(kind(code), 'HaltError', code);
      assert.equal(kind(code, true), 'RejectError', `${code}, path from a tag`);
    }
  });

  it('retry what may pass by itself, and what we do not know', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'EIO', 'EAGAIN', 'EMFILE', 'ESTALE', 'ENOENT', 'EWHATEVER'])
      assert.equal(kind(code), 'RetryableError', code);
    assert.ok(classifyIoError(new Error('no code'), 'x') instanceof RetryableError);
  });

  it('names what failed, and passes an error already classified unchanged', () => {
    assert.equal(classifyIoError(failure('ENOSPC'), 'writing /x').message, 'writing /x: ENOSPC: something');
    for (const err of [new RejectError('r'), new HaltError('h'), new RetryableError('t')])
      assert.equal(classifyIoError(err, 'x'), err);
  });
});
