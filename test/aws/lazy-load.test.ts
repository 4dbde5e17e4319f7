import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

/** Every module URL a full start and stop of `yaml` loads, recorded by a module hook in a fresh process. */
function modulesLoadedBy(yaml: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const loaded = [];
    registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
    const { Estuary } = await import('./src/app.ts');
    const { builtinRegistry } = await import('./src/builtins.ts');
    const { loadConfig } = await import('./src/config/load.ts');
    const { silentLogger } = await import('./src/logger.ts');
    const registry = builtinRegistry();
    const config = loadConfig(${JSON.stringify(yaml)}, 't.yaml', registry, {});
    const app = await Estuary.create(config, { registry, logger: silentLogger() });
    await app.start();
    await app.stop();
    process.stdout.write(JSON.stringify(loaded));`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, AWS_REGION: 'eu-west-1', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as string[];
}

const AWS =
  /\/node_modules\/@aws-sdk\/|\/node_modules\/@smithy\/|\/src\/aws\/credentials\.ts$|\/src\/outputs\/(s3|cloudwatch-logs)\/client\.ts$/;

describe('the AWS SDK is loaded only by configs with an AWS output', () => {
  it('a memory-buffer config with HTTP and stdout loads no @aws-sdk module', () => {
    const loaded = modulesLoadedBy('inputs: [{ type: http, port: 0 }]\noutputs: [{ type: stdout }]');
    assert.ok(
      loaded.some((u) => u.endsWith('/src/outputs/s3/index.ts')),
      'the hook saw the s3 output registered',
    );
    assert.ok(
      loaded.some((u) => u.endsWith('/src/outputs/cloudwatch-logs/index.ts')),
      'the hook saw the cloudwatch_logs output registered',
    );
    assert.deepEqual(
      loaded.filter((u) => AWS.test(u)),
      [],
    );
    assert.deepEqual(
      loaded.filter((u) => /\/node_modules\/hyparquet|\/src\/outputs\/s3\/parquet/.test(u)),
      [],
      'nor the parquet writer',
    );
  });

  it('a config with an s3 output loads the SDK at start', () => {
    const loaded = modulesLoadedBy(
      'inputs: [{ type: http, port: 0 }]\noutputs: [{ type: s3, bucket: logs, endpoint: "http://127.0.0.1:1" }]',
    );
    assert.ok(loaded.some((u) => /\/node_modules\/@aws-sdk\/client-s3\//.test(u)));
    assert.ok(loaded.some((u) => u.endsWith('/src/outputs/s3/client.ts')));
  });

  it('a config with a cloudwatch_logs output loads the CloudWatch Logs client at start', () => {
    const loaded = modulesLoadedBy(
      'inputs: [{ type: http, port: 0 }]\noutputs: [{ type: cloudwatch_logs, log_group_name: app, log_stream_prefix: k-, endpoint: "http://127.0.0.1:1" }]',
    );
    assert.ok(loaded.some((u) => /\/node_modules\/@aws-sdk\/client-cloudwatch-logs\//.test(u)));
    assert.ok(loaded.some((u) => u.endsWith('/src/outputs/cloudwatch-logs/client.ts')));
    assert.ok(!loaded.some((u) => /\/node_modules\/@aws-sdk\/client-s3\//.test(u)), 'and not the S3 client');
  });
});
