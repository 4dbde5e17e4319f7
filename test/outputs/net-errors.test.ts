import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HaltError, RejectError, RetryableError } from '../../src/core/errors.ts';
import { classifyNetError } from '../../src/outputs/net-errors.ts';

const failure = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('connection failures', () => {
  it('halt for what stays so until someone changes something', () => {
    for (const code of [
      'ENOTFOUND',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'CERT_HAS_EXPIRED',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
      'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
    ]) {
      const error = classifyNetError(failure(code), 'es:9200');
      assert.ok(error instanceof HaltError, code);
      assert.match(error.message, new RegExp(`^es:9200: ${code} \\(`));
    }
  });

  it('retry for what passes by itself', () => {
    for (const code of [
      'ECONNREFUSED',
      'ECONNRESET',
      'ETIMEDOUT',
      'EHOSTUNREACH',
      'EPIPE',
      'EAI_AGAIN',
      'EWHATEVER',
    ])
      assert.ok(classifyNetError(failure(code), 'x') instanceof RetryableError, code);
    assert.ok(classifyNetError(new Error('no code'), 'x') instanceof RetryableError);
    assert.ok(classifyNetError('not even an error', 'x') instanceof RetryableError);
  });

  it('passes an error that is already classified unchanged', () => {
    for (const err of [
      new HaltError('h'),
      new RetryableError('r', { retryAfterMs: 5 }),
      new RejectError('j'),
    ])
      assert.equal(classifyNetError(err, 'x'), err);
  });
});
