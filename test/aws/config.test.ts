import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { awsFields, checkAwsConfig, resolveRegion } from '../../src/aws/config.ts';
import { credentialsFor } from '../../src/aws/credentials.ts';

const schema = z
  .strictObject(awsFields)
  .superRefine((c, ctx) =>
    checkAwsConfig(c, (key, message) => ctx.addIssue({ code: 'custom', path: [key], message })),
  );

function issues(input: unknown): string[] {
  const r = schema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('the AWS block', () => {
  it('defaults: default chain, path style off, SDK checksums, 60s requests', () => {
    assert.deepEqual(schema.parse({}), {
      force_path_style: false,
      role_session_name: 'estuary',
      checksum: 'when_supported',
      request_timeout: 60_000,
    });
  });

  it('region: the setting, else AWS_REGION, else AWS_DEFAULT_REGION', () => {
    assert.equal(resolveRegion({ region: 'eu-west-1' }, { AWS_REGION: 'us-east-1' }), 'eu-west-1');
    assert.equal(resolveRegion({}, { AWS_REGION: 'us-east-1', AWS_DEFAULT_REGION: 'x' }), 'us-east-1');
    assert.equal(resolveRegion({}, { AWS_DEFAULT_REGION: 'ap-south-1' }), 'ap-south-1');
    assert.equal(resolveRegion({}, { AWS_REGION: '' }), undefined);
  });

  it('refuses an endpoint that is no http(s) URL, or that holds credentials', () => {
    assert.match(issues({ endpoint: 'minio:9000' })[0]!, /^endpoint: expected an http\(s\) URL/);
    assert.match(
      issues({ endpoint: 'http://key:secret@minio:9000' })[0]!,
      /^endpoint: no credentials in the endpoint URL/,
    );
  });

  it('external_id and sts_endpoint go with role_arn; role_arn must be a role ARN', () => {
    assert.deepEqual(issues({ external_id: 'abc', sts_endpoint: 'https://sts.eu-west-1.amazonaws.com' }), [
      'external_id: external_id goes with role_arn',
      'sts_endpoint: sts_endpoint goes with role_arn',
    ]);
    assert.match(issues({ role_arn: 'arn:aws:iam::123:user/x' })[0]!, /^role_arn: expected arn:aws:iam/);
    assert.deepEqual(
      issues({
        role_arn: 'arn:aws:iam::123456789012:role/estuary',
        external_id: 'ext-1',
        role_session_name: 'pod-a',
      }),
      [],
    );
  });

  it('checksum takes when_required or when_supported only', () => {
    assert.equal(issues({ checksum: 'never' }).length, 1);
  });

  it('credentials: a provider is built without fetching anything (no network, no secret read yet)', () => {
    const plain = credentialsFor(schema.parse({}), 'eu-west-1');
    assert.equal(typeof plain, 'function');
    const assumed = credentialsFor(
      schema.parse({ role_arn: 'arn:aws:iam::123456789012:role/estuary', external_id: 'ext-1' }),
      'eu-west-1',
    );
    assert.equal(typeof assumed, 'function');
  });
});
