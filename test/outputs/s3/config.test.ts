import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../../src/builtins.ts';
import { loadConfig } from '../../../src/config/load.ts';
import type { LogRecord } from '../../../src/core/entry.ts';
import { pack } from '../../../src/core/msgpack.ts';
import { silentLogger } from '../../../src/logger.ts';
import { Metrics } from '../../../src/metrics/registry.ts';
import { s3Output } from '../../../src/outputs/s3/index.ts';
import { checkKeyFormat, closeKey, KeyFormat } from '../../../src/outputs/s3/key-format.ts';
import { configErrors } from '../../support/config.ts';

const registry = builtinRegistry();
const MiB = 1024 * 1024;

function errorsOf(yaml: string): string[] {
  return configErrors(() => loadConfig(yaml, 'estuary.yaml', registry, {}));
}

describe('s3 output configuration', () => {
  it('a key_format with neither ${chunk_id} nor $UUID stops startup, naming file, line and key, and why', () => {
    const errors = errorsOf(`outputs:
  - type: s3
    bucket: logs
    key_format: "logs/$TAG/%Y/%m/%d/%H.json.gz"
`);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /^estuary\.yaml:4: outputs\[0\]\.key_format: key_format needs \$\{chunk_id\} or \$UUID: without one, two chunks .* overwrites the earlier one, losing its records$/,
    );
  });

  it('`estuary check` refuses it too, on stderr, with exit status 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'estuary-s3-check-'));
    try {
      const file = join(dir, 'estuary.yaml');
      writeFileSync(file, 'outputs:\n  - { type: s3, bucket: logs, key_format: "a/$TAG.gz" }\n');
      const run = spawnSync(process.execPath, ['bin/estuary.js', 'check', '-c', file], { encoding: 'utf8' });
      assert.equal(run.status, 1);
      assert.match(run.stderr, new RegExp(`^${file}:2: outputs\\[0\\]\\.key_format: key_format needs`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('other mistakes are named by key, all at once', () => {
    const errors = errorsOf(`outputs:
  - type: s3
    bucket: Logs_Bucket
    key_format: "x/$-/\${chunk_id}"
    upload_chunk_size: 1MiB
    compression: brotli
    s3_key_format: x
`);
    assert.deepEqual(errors.map((e) => e.replace(/: .*?: /, ' | ').replace(/ \(.*$/, '')).sort(), [
      'estuary.yaml:3 | expected an S3 bucket name',
      'estuary.yaml:4 | unknown placeholder at "$-/${chunk_id}"',
      'estuary.yaml:5 | expected 5MiB to 50MiB',
      'estuary.yaml:6 | expected one of "gzip", "zstd", "snappy", "none", got "brotli"',
      'estuary.yaml:7 | unknown key',
    ]);
  });

  it('schema and snappy go with format: parquet; a column type must be known', () => {
    assert.deepEqual(
      errorsOf(
        'outputs:\n  - type: s3\n    bucket: logs\n    compression: snappy\n    schema: { level: string }\n',
      ).sort(),
      [
        'estuary.yaml:4: outputs[0].compression: snappy is a parquet column compression: with json_lines or plain, use gzip or zstd',
        'estuary.yaml:5: outputs[0].schema: schema goes with format: parquet',
      ],
    );
    assert.match(
      errorsOf(
        'outputs:\n  - type: s3\n    bucket: logs\n    format: parquet\n    schema: { level: text }\n',
      )[0]!,
      /^estuary\.yaml:5: outputs\[0\]\.schema\.level: expected one of "string", "json", .*got "text"/,
    );
  });

  it('log_key goes with format: plain', () => {
    assert.match(
      errorsOf('outputs:\n  - { type: s3, bucket: logs, log_key: message }\n')[0]!,
      /^estuary\.yaml:2: outputs\[0\]\.log_key: log_key goes with format: plain$/,
    );
  });

  it('kms_key_id goes with aws:kms; tagging takes at most 10 tags', () => {
    assert.match(
      errorsOf(
        'outputs:\n  - { type: s3, bucket: logs, kms_key_id: alias/x, server_side_encryption: AES256 }\n',
      )[0]!,
      /^estuary\.yaml:2: outputs\[0\]\.kms_key_id: kms_key_id goes with server_side_encryption aws:kms/,
    );
    const tags = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`t${i}`, 'v']));
    assert.match(
      errorsOf(`outputs:\n  - { type: s3, bucket: logs, tagging: ${JSON.stringify(tags)} }\n`)[0]!,
      /outputs\[0\]\.tagging: S3 takes at most 10 tags per object/,
    );
  });

  it('buffer defaults suit S3 (64MiB chunks, 5m flush); the output’s buffer overrides them', () => {
    const c = loadConfig(
      `outputs:
  - { type: s3, id: a, bucket: logs }
  - { type: s3, id: b, bucket: logs, buffer: { flush_interval: 1m, chunk_limit_size: 16MiB } }
`,
      'estuary.yaml',
      registry,
      {},
    );
    assert.equal(c.outputs[0]!.buffer.chunkLimitSize, 64 * MiB);
    assert.equal(c.outputs[0]!.buffer.flushIntervalMs, 300_000);
    assert.equal(c.outputs[1]!.buffer.chunkLimitSize, 16 * MiB);
    assert.equal(c.outputs[1]!.buffer.flushIntervalMs, 60_000);
  });
});

describe('region', () => {
  it('without region, AWS_REGION or AWS_DEFAULT_REGION the output does not start, saying what to set', async () => {
    const saved = { r: process.env.AWS_REGION, d: process.env.AWS_DEFAULT_REGION };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      const output = s3Output.create(s3Output.schema.parse({ bucket: 'logs' }), {
        id: 's3.noregion',
        logger: silentLogger(),
        metrics: new Metrics(),
        configDir: '/',
      });
      await assert.rejects(
        output.start!(),
        /s3\.noregion: no region: set `region` or the AWS_REGION environment variable/,
      );
      await output.stop?.();
    } finally {
      if (saved.r !== undefined) process.env.AWS_REGION = saved.r;
      if (saved.d !== undefined) process.env.AWS_DEFAULT_REGION = saved.d;
    }
  });
});

describe('key_format', () => {
  const T = { sec: 1_700_000_000, nsec: 0 }; // 2023-11-14T22:13:20Z
  /** The open key of a record (`{}` unless given) of `tag` at `sec`. */
  const at = (k: KeyFormat, tag: string, sec: number, record: LogRecord = {}) =>
    k.resolveAt(tag, sec, 0, pack(record), 0, () => record);

  it('accepts the default and Fluent Bit forms', () => {
    for (const f of [
      'estuary/$TAG/dt=%Y-%m-%d/%H/${chunk_id}.json.gz',
      '/fluent-bit-logs/$TAG[2]/$TAG[0]/%Y/%m/%d/%H/%M/%S/$UUID.gz'.slice(1),
      '${hostname}-$UUID',
    ])
      assert.equal(checkKeyFormat(f), undefined, f);
    assert.match(checkKeyFormat('/a/${chunk_id}')!, /must not start with "\/"/);
    assert.equal(checkKeyFormat("ns=$kubernetes['namespace_name']/$level/${chunk_id}"), undefined);
    assert.match(checkKeyFormat('a/$/${chunk_id}')!, /unknown placeholder at "\$\/\$\{chunk_id\}"/);
  });

  it('$TAG[n] splits on each delimiter character; a part past the end is "_"', () => {
    const k = new KeyFormat('$TAG[0]/$TAG[1]/$TAG[2]/$TAG[3]/${chunk_id}', '._');
    assert.equal(closeKey(at(k, 'kube.var_log', T.sec), 'c', 0), 'kube/var/log/_/c-0');
  });

  it('tag values cannot add path levels, climb with .., or carry control characters', () => {
    const k = new KeyFormat('logs/$TAG/${chunk_id}', '.');
    assert.equal(closeKey(at(k, 'a/../b\u0000c', T.sec), 'c', 0), 'logs/a____b_c/c-0');
  });

  it('strftime comes from each record’s time; a % in a tag is not a directive', () => {
    const k = new KeyFormat('%Y/%m/%d/%H/$TAG/${chunk_id}', '.');
    assert.equal(closeKey(at(k, '100%H', T.sec), 'c', 2), '2023/11/14/22/100%H/c-2');
    assert.equal(closeKey(at(k, '100%H', T.sec + 3600), 'c', 3), '2023/11/14/23/100%H/c-3');
  });

  it("record fields: $kubernetes['namespace_name'], $level; inert; `_` when missing or not a scalar", () => {
    const k = new KeyFormat("ns=$kubernetes['namespace_name']/lvl=$level/c=$code/${chunk_id}", '.');
    const key = (record: LogRecord) => closeKey(at(k, 't', T.sec, record), 'c', 0);
    assert.equal(
      key({ kubernetes: { namespace_name: 'shop' }, level: 'info', code: 200 }),
      'ns=shop/lvl=info/c=200/c-0',
    );
    assert.equal(
      key({ kubernetes: { namespace_name: '../etc' }, level: { x: 1 } }),
      'ns=___etc/lvl=_/c=_/c-0',
    );
    assert.equal(key({}), 'ns=_/lvl=_/c=_/c-0');
    // A number key cannot be matched from the bytes: the decoded record answers.
    const byIndex = new KeyFormat('$items[0]/${chunk_id}', '.');
    const record = { items: ['first', 'second'] };
    assert.equal(
      closeKey(
        byIndex.resolveAt('t', T.sec, 0, pack(record), 0, () => record),
        'c',
        0,
      ),
      'first/c-0',
    );
  });

  it('$UUID is fixed by the chunk and part, and differs between them', () => {
    const k = new KeyFormat('$UUID', '.');
    const open = at(k, 't', T.sec);
    assert.equal(closeKey(open, 'chunk-a', 0), closeKey(open, 'chunk-a', 0));
    assert.notEqual(closeKey(open, 'chunk-a', 0), closeKey(open, 'chunk-a', 1));
    assert.notEqual(closeKey(open, 'chunk-a', 0), closeKey(open, 'chunk-b', 0));
  });
});
