import {
  errorMessage,
  HaltError,
  isWriteError,
  parseRetryAfter,
  RejectError,
  RetryableError,
  type WriteError,
} from '../core/errors.ts';
import { classifyNetworkError } from '../delivery/http-errors.ts';

/**
 * What an AWS SDK error means for the data, for every AWS output. Duck-typed on the SDK's error
 * shape (`name` = the service's error code, `$metadata.httpStatusCode`, `$response`), so this
 * module loads no SDK:
 *
 *   throttling, SlowDown, 408, 429, 5xx, timeouts, network   retry (after Retry-After, if sent)
 *   AccessDenied, bad / expired credentials, NoSuchBucket,    halt: no retry of this data fixes
 *   no credentials found, wrong region, other 4xx             them; the data waits, the driver
 *                                                             probes and resumes
 *   EntityTooLarge                                            reject (this object never fits)
 *
 * An S3 object's bytes are ours, not the sink's to judge: a 4xx the table does not name says
 * the request or the configuration is wrong, so it halts (keeping the data) rather than
 * dead-lettering records that would pass once the setting is fixed.
 */

const HALT_CODES: Record<string, string> = {
  AccessDenied: 'check the IAM policy of the credentials (and the bucket policy)',
  AccessDeniedException: 'check the IAM policy of the credentials',
  AllAccessDisabled: 'all access to this bucket is disabled',
  AccountProblem: 'the AWS account has a problem that prevents the request',
  InvalidAccessKeyId: 'the access key is unknown: check the credentials chain',
  InvalidClientTokenId: 'the access key is unknown: check the credentials chain',
  UnrecognizedClientException: 'the access key is unknown: check the credentials chain',
  SignatureDoesNotMatch: 'the secret key does not match: check the credentials chain',
  ExpiredToken: 'the session token expired and was not renewed: check the credentials chain',
  ExpiredTokenException: 'the session token expired and was not renewed: check the credentials chain',
  InvalidToken: 'the session token is invalid: check the credentials chain',
  TokenRefreshRequired: 'the session token must be refreshed: check the credentials chain',
  CredentialsProviderError:
    'no credentials found: set up the environment, a profile, IRSA or an instance role',
  NoSuchBucket: 'create the bucket (or fix `bucket`); the output resumes by itself once it exists',
  PermanentRedirect: 'the bucket is in another region: set `region`',
  AuthorizationHeaderMalformed: 'the bucket is in another region: set `region`',
  IllegalLocationConstraintException: 'the bucket is in another region: set `region`',
  InvalidBucketName: 'fix `bucket`',
  NotImplemented: 'the store does not support a header the SDK sent: try `checksum: when_required`',
  InvalidArgument:
    'the store refused a request header: with an S3-compatible store try `checksum: when_required`',
};

const RETRY_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'InternalFailure',
  'NoSuchUpload',
  'TimeoutError',
  'AbortError',
]);

const REJECT_CODES = new Set(['EntityTooLarge']);

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $response?: { statusCode?: unknown; headers?: Record<string, string | undefined> };
}

/** The error as the sink driver acts on it; `at` names the call (`s3://bucket/key: PutObject`). */
export function classifyAwsError(err: unknown, at: string): WriteError {
  if (isWriteError(err)) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const code = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : '';
  const statusValue = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  const status = typeof statusValue === 'number' ? statusValue : undefined;
  const message = `${at}: ${status === undefined ? '' : `${status} `}${code && code !== 'Error' ? `${code}: ` : ''}${errorMessage(err)}`;
  const hint = HALT_CODES[code];
  if (hint !== undefined) return new HaltError(`${message} (${hint})`, { cause: err });
  if (RETRY_CODES.has(code)) return new RetryableError(message, { cause: err, retryAfterMs: retryAfter(e) });
  if (REJECT_CODES.has(code)) return new RejectError(message, { cause: err });
  if (status === undefined) return classifyNetworkError(err, at);
  if (status === 408 || status === 429 || status >= 500)
    return new RetryableError(message, { cause: err, retryAfterMs: retryAfter(e) });
  if (status === 401 || status === 403)
    return new HaltError(
      `${message} (credentials or permissions: check the IAM policy and the credentials chain)`,
      { cause: err },
    );
  return new HaltError(`${message} (the request or the configuration is wrong; the data waits)`, {
    cause: err,
  });
}

function retryAfter(e: SdkErrorShape): number | undefined {
  return parseRetryAfter(e.$response?.headers?.['retry-after']);
}
