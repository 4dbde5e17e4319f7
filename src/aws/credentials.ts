import { fromNodeProviderChain, fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { AwsConfig } from './config.ts';

/**
 * The SDK's default chain (environment, `profile`, web identity / IRSA, EKS Pod Identity, ECS
 * and EC2 metadata), with `role_arn` assumed on top of it. Loaded only through a client module
 * that an AWS output imports at start. The providers cache and refresh what they fetch; nothing
 * here keeps or prints a secret.
 */
export type Credentials =
  | ReturnType<typeof fromNodeProviderChain>
  | ReturnType<typeof fromTemporaryCredentials>;

export function credentialsFor(c: AwsConfig, region: string): Credentials {
  const chain = fromNodeProviderChain(c.profile === undefined ? {} : { profile: c.profile });
  if (c.role_arn === undefined) return chain;
  return fromTemporaryCredentials({
    params: {
      RoleArn: c.role_arn,
      RoleSessionName: c.role_session_name,
      ...(c.external_id === undefined ? {} : { ExternalId: c.external_id }),
    },
    masterCredentials: chain,
    clientConfig: {
      region,
      ...(c.sts_endpoint === undefined ? {} : { endpoint: c.sts_endpoint }),
      // The sink driver retries; the SDK must not retry inside a write's deadline.
      maxAttempts: 1,
    },
  });
}
