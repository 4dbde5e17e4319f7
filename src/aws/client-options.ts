import type { AwsConfig } from './config.ts';
import { credentialsFor } from './credentials.ts';

/**
 * What every AWS SDK client of an output is built with: region, endpoint override, the
 * credentials chain, no retries of its own (the sink driver retries, after its backoff), and
 * request_timeout. Loaded with the SDK (credentials.ts imports it), by client modules only.
 */
export function clientOptions(aws: AwsConfig, region: string) {
  return {
    region,
    ...(aws.endpoint === undefined ? {} : { endpoint: aws.endpoint }),
    credentials: credentialsFor(aws, region),
    maxAttempts: 1,
  };
}

/** Options of the SDK's Node HTTP handler for request_timeout. */
export function handlerOptions(aws: AwsConfig) {
  return {
    requestTimeout: aws.request_timeout,
    throwOnRequestTimeout: true,
    connectionTimeout: Math.min(aws.request_timeout, 10_000),
  };
}
