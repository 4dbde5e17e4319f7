import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { configErrors } from '../../support/config.ts';

const registry = builtinRegistry();

function errorsOf(yaml: string): string[] {
  return configErrors(() => loadConfig(yaml, 'estuary.yaml', registry, {}));
}

describe('kinesis_streams output configuration', () => {
  it('defaults: no newline, no aggregation, random partition keys, oversize reject', () => {
    const c = loadConfig(
      'outputs:\n  - { type: kinesis_streams, stream: logs }\n',
      'estuary.yaml',
      registry,
      {},
    );
    const o = c.outputs[0]!.options as Record<string, unknown>;
    assert.deepEqual(
      [o.append_newline, o.aggregation, o.partition_key, o.oversize],
      [false, 'none', undefined, 'reject'],
    );
  });

  it('the stream by name or by ARN, one of the two', () => {
    assert.match(
      errorsOf('outputs:\n  - { type: kinesis_streams, aggregation: kpl }\n')[0]!,
      /outputs\[0\]\.stream: give the stream by `stream` \(its name\) or `stream_arn`, one of the two/,
    );
    assert.match(
      errorsOf(
        'outputs:\n  - { type: kinesis_streams, stream: logs, stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/logs" }\n',
      )[0]!,
      /one of the two/,
    );
    assert.match(
      errorsOf('outputs:\n  - { type: kinesis_streams, stream_arn: "arn:aws:s3:::logs" }\n')[0]!,
      /^estuary\.yaml:2: outputs\[0\]\.stream_arn: expected arn:aws:kinesis:<region>:<account>:stream\/<name>/,
    );
  });

  it('a partition_key that is no record path, and an unknown aggregation, are named', () => {
    const errors = errorsOf(`outputs:
  - type: kinesis_streams
    stream: logs
    partition_key: "$kubernetes['pod_name"
    aggregation: simple
`);
    assert.deepEqual(errors.map((e) => e.replace(/: .*?: /, ' | ').replace(/ \(.*$/, '')).sort(), [
      'estuary.yaml:4 | invalid record path "$kubernetes[\'pod_name" at character 12',
      'estuary.yaml:5 | expected one of "none", "kpl", got "simple"',
    ]);
  });
});
