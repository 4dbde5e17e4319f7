import { classifyAwsError } from '../../aws/errors.ts';
import { HaltError, RejectError, RetryableError, type WriteError } from '../../core/errors.ts';

/**
 * A failed PutRecordBatch / PutRecords as the driver acts on it. The stream APIs answer some
 * things with a 400 that the shared AWS table (aws/errors.ts, where an unnamed 4xx halts) reads
 * otherwise: a missing stream and KMS trouble halt with a hint, KMS throttling is retried, and
 * InvalidArgumentException is about these records (the call's records are dead-lettered).
 */
const HALT: Record<string, string> = {
  ResourceNotFoundException:
    'create the stream (or fix its name); the output resumes by itself once it exists',
  ResourceInUseException:
    'the stream is being created, deleted or updated; the output resumes once it is active',
  InvalidKMSResourceException: 'the KMS key of the stream cannot be used: check the key and its policy',
  KMSAccessDeniedException: 'the credentials may not use the KMS key of the stream',
  KMSDisabledException: 'the KMS key of the stream is disabled',
  KMSNotFoundException: 'the KMS key of the stream was not found',
  KMSInvalidStateException: 'the KMS key of the stream is not in a usable state',
  KMSOptInRequired: 'the account is not subscribed to KMS',
};

const RETRY = new Set(['KMSThrottlingException', 'LimitExceededException']);

interface Named {
  name?: unknown;
}

export function classifyStreamError(err: unknown, at: string): WriteError {
  const code = typeof err === 'object' && err !== null ? (err as Named).name : undefined;
  const message = `${at}: ${typeof code === 'string' ? `${code}: ` : ''}${err instanceof Error ? err.message : String(err)}`;
  if (typeof code === 'string') {
    const hint = HALT[code];
    if (hint !== undefined) return new HaltError(`${message} (${hint})`, { cause: err });
    // "This operation is not permitted on KinesisStreamAsSource delivery stream type": the
    // stream, not the records, is wrong — every record would be refused the same way.
    if (code === 'InvalidArgumentException' && /not permitted/i.test(message))
      return new HaltError(message, { cause: err });
    if (code === 'InvalidArgumentException') return new RejectError(message, { cause: err });
    if (RETRY.has(code)) return new RetryableError(message, { cause: err });
  }
  return classifyAwsError(err, at);
}
