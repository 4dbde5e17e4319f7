/**
 * The environment an AWS output's test runs in: static credentials from the SDK's default
 * chain (the fakes check the key id; the secret signs), a region, and never the EC2 metadata
 * service of whatever machine runs the tests.
 */
export function useAwsTestEnv(
  options: { accessKeyId?: string; secretAccessKey?: string; region?: string } = {},
): void {
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_REGION = options.region ?? 'eu-west-1';
  if (options.accessKeyId !== undefined || !process.env.AWS_ACCESS_KEY_ID)
    process.env.AWS_ACCESS_KEY_ID = options.accessKeyId ?? 'FAKEKEY';
  process.env.AWS_SECRET_ACCESS_KEY = options.secretAccessKey ?? 'fake-secret';
}
