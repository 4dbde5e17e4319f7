import { errorMessage, HaltError, isWriteError, RetryableError, type WriteError } from '../core/errors.ts';

/**
 * OpenSSL's certificate verification failures, as Node names them in `err.code`, and Node's
 * own for a certificate that names another host. The certificate (or our CA bundle) has to
 * change before any connection succeeds.
 */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** TLS alerts by which the server refuses our client certificate (or its absence). */
const TLS_REFUSED =
  /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(?:BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)$/;

/** Why no retry of any data reaches the sink until someone changes something, or undefined. */
function haltReason(code: string): string | undefined {
  // EAI_AGAIN (the resolver did not answer) is not here: that one passes by itself.
  if (code === 'ENOTFOUND') return 'unknown host: check the host name (or the DNS record)';
  if (TLS_VERIFY_CODES.has(code))
    return 'the server certificate does not verify: check ca_file and the host name';
  if (TLS_REFUSED.test(code))
    return 'the server refused our client certificate: check cert_file and key_file';
  return undefined;
}

/**
 * A connection-level failure as the sink driver should see it: an unknown host or a TLS
 * verification failure halts the output (it keeps its data and probes); refused, reset,
 * timed out and everything else is retried.
 */
export function classifyNetError(err: unknown, what: string): WriteError {
  if (isWriteError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const halt = typeof code === 'string' ? haltReason(code) : undefined;
  const message = `${what}: ${errorMessage(err)}`;
  if (halt) return new HaltError(`${message} (${halt})`, { cause: err });
  return new RetryableError(message, { cause: err });
}
