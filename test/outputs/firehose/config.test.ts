import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { configErrors } from '../../support/config.ts';

const registry = builtinRegistry();

function errorsOf(yaml: string): string[] {
  return configErrors(() => loadConfig(yaml, 'estuary.yaml', registry, {}));
}

describe('firehose output configuration', () => {
  it('defaults: one JSON line per record, no aggregation, no compression, oversize reject, 8MiB chunks flushed each second', () => {
    const c = loadConfig(
      'outputs:\n  - { type: firehose, delivery_stream: logs }\n',
      'estuary.yaml',
      registry,
      {},
    );
    const out = c.outputs[0]!;
    assert.deepEqual(
      {
        append_newline: (out.options as Record<string, unknown>).append_newline,
        aggregation: (out.options as Record<string, unknown>).aggregation,
        compression: (out.options as Record<string, unknown>).compression,
        oversize: (out.options as Record<string, unknown>).oversize,
        time_key_format: (out.options as Record<string, unknown>).time_key_format,
      },
      {
        append_newline: true,
        aggregation: 'none',
        compression: 'none',
        oversize: 'reject',
        time_key_format: '%Y-%m-%dT%H:%M:%S',
      },
    );
    assert.equal(out.buffer.chunkLimitSize, 8 * 1024 * 1024);
    assert.equal(out.buffer.flushIntervalMs, 1000);
  });

  it('mistakes are named by key, all at once', () => {
    const errors = errorsOf(`outputs:
  - type: firehose
    delivery_stream: "logs stream"
    aggregation: kpl
    compression: snappy
`);
    assert.deepEqual(errors.map((e) => e.replace(/: .*?: /, ' | ').replace(/ \(.*$/, '')).sort(), [
      'estuary.yaml:3 | expected a delivery stream name',
      'estuary.yaml:4 | expected one of "none", "simple", got "kpl"',
      'estuary.yaml:5 | expected one of "none", "gzip", "zstd", got "snappy"',
    ]);
  });

  it('options that do nothing together are refused, saying why', () => {
    const errors = errorsOf(`outputs:
  - type: firehose
    delivery_stream: logs
    log_key: log
    time_key: time
    replace_dots: _
    external_id: x1
`);
    assert.deepEqual(errors.map((e) => e.replace(/: .*?: /, ' | ').replace(/ \(.*$/, '')).sort(), [
      'estuary.yaml:5 | time_key has no effect with log_key',
      'estuary.yaml:6 | replace_dots has no effect with log_key',
      'estuary.yaml:7 | external_id goes with role_arn',
    ]);
  });

  it('aggregation simple needs the newline that separates records', () => {
    assert.match(
      errorsOf(
        'outputs:\n  - { type: firehose, delivery_stream: logs, aggregation: simple, append_newline: false }\n',
      )[0]!,
      /^estuary\.yaml:2: outputs\[0\]\.append_newline: aggregation: simple joins records by their newlines/,
    );
    // With log_key too: a CRI message has no newline of its own.
    assert.match(
      errorsOf(
        'outputs:\n  - { type: firehose, delivery_stream: logs, aggregation: simple, append_newline: false, log_key: message }\n',
      )[0]!,
      /outputs\[0\]\.append_newline: aggregation: simple joins records by their newlines/,
    );
  });

  it('estuary check prints the resolved output, with no credential in it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-firehose-'));
    try {
      const file = join(dir, 'estuary.yaml');
      writeFileSync(
        file,
        'outputs:\n  - { type: firehose, delivery_stream: logs, role_arn: "arn:aws:iam::123456789012:role/logs" }\n',
      );
      const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY';
      const run = spawnSync(process.execPath, ['bin/estuary.js', 'check', '-c', file], {
        encoding: 'utf8',
        env: { ...process.env, AWS_ACCESS_KEY_ID: 'AKIAFAKEKEYID', AWS_SECRET_ACCESS_KEY: secret },
      });
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /firehose/);
      assert.match(run.stdout, /delivery_stream/);
      assert.ok(
        !run.stdout.includes(secret) && !run.stdout.includes('AKIAFAKEKEYID'),
        'no credential printed',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
