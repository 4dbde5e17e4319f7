import { z } from 'zod';
import { duration } from '../config/values.ts';

/** An http(s) URL for an endpoint override, kept as written (the SDK parses it). */
const endpointUrl = () =>
  z.string().superRefine((value, ctx) => {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      ctx.addIssue({
        code: 'custom',
        message: `expected an http(s) URL like http://minio:9000, got ${JSON.stringify(value)}`,
      });
    else if (url.username || url.password)
      ctx.addIssue({
        code: 'custom',
        message: 'no credentials in the endpoint URL: use the credentials chain',
      });
  });

/**
 * The settings every AWS output shares (s3 now; firehose, kinesis_streams and cloudwatch_logs
 * later), spread into each output's own schema. Credentials are deliberately not among them:
 * they come from the SDK's default chain (environment, `profile`, web identity / IRSA, EKS Pod
 * Identity, ECS and EC2 metadata), so no key ever sits in a config file, a log line or
 * `estuary check`'s output.
 */
export const awsFields = {
  /** Region of the bucket / stream; unset: `AWS_REGION` (or `AWS_DEFAULT_REGION`). */
  region: z.string().min(1).optional(),
  /** Another endpoint: an S3-compatible store (MinIO, Ceph), LocalStack, a VPC endpoint. */
  endpoint: endpointUrl().optional(),
  /** `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key` (most S3-compatible stores). */
  force_path_style: z.boolean().default(false),
  /** A profile of the shared config and credentials files (`~/.aws/config`). */
  profile: z.string().min(1).optional(),
  /** Assume this role with the chain's credentials (STS AssumeRole), renewed before it expires. */
  role_arn: z
    .string()
    .regex(/^arn:[^:]+:iam::\d{12}:role\/.+$/, 'expected arn:aws:iam::<account>:role/<name>')
    .optional(),
  /** The external id the role's trust policy asks for. */
  external_id: z.string().min(2).optional(),
  /** Names the assumed-role session in CloudTrail. */
  role_session_name: z
    .string()
    .regex(/^[\w+=,.@-]{2,64}$/, 'expected 2-64 of letters, digits and +=,.@-')
    .default('estuary'),
  /** STS endpoint for assume role (a regional or VPC endpoint). */
  sts_endpoint: endpointUrl().optional(),
  /**
   * `when_supported`: the SDK's default checksums on every upload; `when_required`: only where
   * the API requires one — for S3-compatible stores that refuse the newer checksum headers.
   */
  checksum: z.enum(['when_required', 'when_supported']).default('when_supported'),
  /** One request (a PutObject, one part) may take this long; then it is abandoned and the chunk retried. */
  request_timeout: duration().default(60_000),
} as const;

export type AwsConfig = z.output<z.ZodObject<typeof awsFields>>;

/** Cross-key rules of the AWS block, for an output's `superRefine`. */
export function checkAwsConfig(c: AwsConfig, issue: (key: string, message: string) => void): void {
  if (c.role_arn === undefined) {
    if (c.external_id !== undefined) issue('external_id', 'external_id goes with role_arn');
    if (c.sts_endpoint !== undefined) issue('sts_endpoint', 'sts_endpoint goes with role_arn');
  }
}

/** `region`, else the environment's; undefined when neither says. */
export function resolveRegion(
  c: Pick<AwsConfig, 'region'>,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return c.region ?? (env.AWS_REGION || undefined) ?? (env.AWS_DEFAULT_REGION || undefined);
}
