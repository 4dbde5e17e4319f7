import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AccessDenied, NoSuchBucket, NoSuchUpload, S3ServiceException } from '@aws-sdk/client-s3';
import { classifyAwsError } from '../../src/aws/errors.ts';
import { HaltError, RejectError, RetryableError } from '../../src/core/errors.ts';

const AT = 's3://logs/key';

function serviceError(
  name: string,
  status: number,
  fault: 'client' | 'server' = 'client',
): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: fault,
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

describe('classifyAwsError', () => {
  for (const [name, status] of [
    ['SlowDown', 503],
    ['Throttling', 400],
    ['ThrottlingException', 400],
    ['RequestTimeout', 400],
    ['InternalError', 500],
    ['ServiceUnavailable', 503],
  ] as const) {
    it(`${name} (${status}) is retried`, () => {
      assert.ok(classifyAwsError(serviceError(name, status), AT) instanceof RetryableError);
    });
  }

  for (const [name, status] of [
    ['InvalidAccessKeyId', 403],
    ['SignatureDoesNotMatch', 403],
    ['ExpiredToken', 400],
    ['InvalidToken', 400],
    ['AllAccessDisabled', 403],
    ['PermanentRedirect', 301],
  ] as const) {
    it(`${name} (${status}) halts`, () => {
      assert.ok(classifyAwsError(serviceError(name, status), AT) instanceof HaltError);
    });
  }

  it('the modelled AccessDenied and NoSuchBucket halt, with what to check', () => {
    const denied = classifyAwsError(
      new AccessDenied({ message: 'Access Denied', $metadata: { httpStatusCode: 403 } }),
      AT,
    );
    assert.ok(denied instanceof HaltError);
    assert.match(denied.message, /^s3:\/\/logs\/key: 403 AccessDenied: Access Denied \(check the IAM policy/);
    const missing = classifyAwsError(
      new NoSuchBucket({ message: 'gone', $metadata: { httpStatusCode: 404 } }),
      AT,
    );
    assert.ok(missing instanceof HaltError);
    assert.match(missing.message, /resumes by itself once it exists/);
  });

  it('NoSuchUpload (a multipart upload aborted under us) is retried whole', () => {
    const e = new NoSuchUpload({ message: 'no upload', $metadata: { httpStatusCode: 404 } });
    assert.ok(classifyAwsError(e, AT) instanceof RetryableError);
  });

  it('EntityTooLarge rejects: that object never fits', () => {
    assert.ok(classifyAwsError(serviceError('EntityTooLarge', 400), AT) instanceof RejectError);
  });

  it('unnamed answers go by status: 5xx, 429, 408 retry; 401, 403, 404 and other 4xx halt', () => {
    for (const status of [500, 502, 429, 408])
      assert.ok(
        classifyAwsError(serviceError('UnknownError', status), AT) instanceof RetryableError,
        `${status}`,
      );
    for (const status of [400, 401, 403, 404, 409])
      assert.ok(classifyAwsError(serviceError('UnknownError', status), AT) instanceof HaltError, `${status}`);
  });

  it('no credentials anywhere in the chain halts (the data waits for them)', () => {
    const e = Object.assign(new Error('Could not load credentials from any providers'), {
      name: 'CredentialsProviderError',
    });
    const error = classifyAwsError(e, AT);
    assert.ok(error instanceof HaltError);
    assert.match(error.message, /no credentials found/);
  });

  it('network failures: refused and timed out retry; an unknown host halts', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    assert.ok(classifyAwsError(refused, AT) instanceof RetryableError);
    const timeout = Object.assign(new Error('Request timed out'), { name: 'TimeoutError' });
    assert.ok(classifyAwsError(timeout, AT) instanceof RetryableError);
    const aborted = Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    assert.ok(classifyAwsError(aborted, AT) instanceof RetryableError);
    const unknown = Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.invalid'), { code: 'ENOTFOUND' });
    assert.ok(classifyAwsError(unknown, AT) instanceof HaltError);
  });

  it('an error already classified passes unchanged', () => {
    const halt = new HaltError('already');
    assert.equal(classifyAwsError(halt, AT), halt);
  });
});
