import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { builtinRegistry } from '../../src/builtins.ts';
import { substituteEnv } from '../../src/config/env.ts';
import { loadConfig, loadConfigFile, maskSecrets } from '../../src/config/load.ts';
import { configErrors } from '../support/config.ts';

const registry = builtinRegistry();

function errorsOf(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  return configErrors(() => loadConfig(yaml, 'estuary.yaml', registry, env));
}

describe('config loading', () => {
  it('loads a config with defaults filled and buffer settings layered', () => {
    const c = loadConfig(
      `service:
  buffer: { flush_interval: 5s, chunk_limit_size: 1MiB, retry: { max_times: 3 } }
inputs:
  - { type: http, port: 9999 }
outputs:
  - { type: stdout }
  - { type: file, id: audit, match: "audit.*", path: /tmp/x.log, buffer: { chunk_limit_size: 512KiB, retry: { wait: 250ms } } }
`,
      'e.yaml',
      registry,
      {},
    );
    assert.equal(c.service.http.port, 24231);
    assert.deepEqual(
      c.outputs.map((o) => o.id),
      ['stdout.0', 'audit'],
    );
    const [stdout, audit] = c.outputs;
    assert.equal(stdout!.buffer.flushIntervalMs, 5000);
    assert.equal(stdout!.buffer.chunkLimitSize, 1024 ** 2);
    assert.equal(audit!.buffer.chunkLimitSize, 512 * 1024);
    assert.equal(audit!.buffer.retry.waitMs, 250);
    assert.equal(audit!.buffer.retry.maxTimes, 3, 'service-level retry settings are inherited key by key');
    assert.equal(audit!.match.matches('audit.x'), true);
    assert.equal(stdout!.match.matches('anything.at.all'), true, 'match defaults to **');
  });

  it('reports every problem at once with file, line, key and what was expected', () => {
    const lines = errorsOf(`service:
  log_level: loud
  buffer:
    chunk_limit_size: eight
inputs:
  - type: http
    port: "not a port"
    colour: blue
outputs:
  - type: nope
  - type: stdout
    buffer: { flush_interval: soon }
`);
    assert.deepEqual(lines, [
      'estuary.yaml:2: service.log_level: expected one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"',
      'estuary.yaml:4: service.buffer.chunk_limit_size: expected a size like 8MiB or 512KiB, got "eight"',
      'estuary.yaml:7: inputs[0].port: expected a port number 0-65535, got "not a port"',
      'estuary.yaml:8: inputs[0].colour: unknown key',
      `estuary.yaml:10: outputs[0].type: unknown output type "nope" (known: ${registry.types('output').sort().join(', ')})`,
      'estuary.yaml:12: outputs[1].buffer.flush_interval: expected a duration like 500ms, 5s or 72h, got "soon"',
    ]);
  });

  it('names a missing required key at its parent', () => {
    assert.deepEqual(errorsOf('outputs:\n  - type: file\n    id: f\n'), [
      'estuary.yaml:2: outputs[0].path: required, expected string',
    ]);
  });

  it('rejects duplicate ids and YAML syntax errors with a line', () => {
    assert.match(
      errorsOf('outputs:\n  - { type: stdout, id: a }\n  - { type: "null", id: a }\n')[0]!,
      /^estuary.yaml:3: outputs\[1\].id: duplicate id "a"/,
    );
    assert.match(errorsOf('inputs: [\n  {type: http\n')[0]!, /^estuary.yaml:\d+: YAML: /);
  });

  it('substitutes ${VAR} and ${VAR:-default}, typing unquoted values, leaving ${tag} to components', () => {
    const c = loadConfig(
      'inputs:\n  - type: http\n    port: ${PORT}\n    auth_tokens: ["${TOKEN:-fallback}", "${NUMERIC}"]\n  - { type: http, port: "${PORT2}" }\noutputs:\n  - { type: file, path: "/logs/${tag}.log" }\n',
      'e.yaml',
      registry,
      { PORT: '8080', PORT2: '8081', NUMERIC: '12345' },
    );
    const http = c.inputs[0]!.options as { port: number; auth_tokens: string[] };
    assert.equal(http.port, 8080);
    assert.deepEqual(http.auth_tokens, ['fallback', '12345'], 'quoted values stay strings');
    assert.equal(
      (c.inputs[1]!.options as { port: number }).port,
      8081,
      'a quoted port inside { } is accepted',
    );
    assert.equal((c.outputs[0]!.options as { path: string }).path, '/logs/${tag}.log');
    assert.deepEqual(errorsOf('inputs:\n  - { type: http, auth_tokens: ["${SECRET_TOKEN}"] }\n'), [
      'estuary.yaml:2: environment variable SECRET_TOKEN is not set (use ${SECRET_TOKEN:-default} for a default)',
    ]);
    assert.equal(substituteEnv('a$${B}c', {}).value, 'a${B}c');
  });

  it('service.workers: a count, "auto" (= usable CPUs), or an error naming both', () => {
    const workers = (value: string, env: NodeJS.ProcessEnv = {}) =>
      loadConfig(`service:\n  workers: ${value}\n`, 'w.yaml', registry, env).service.workers;
    assert.equal(loadConfig('', 'w.yaml', registry, {}).service.workers, 1);
    assert.equal(workers('4'), 4);
    assert.equal(workers('auto'), availableParallelism());
    assert.equal(workers('"${WORKERS}"', { WORKERS: '3' }), 3);
    for (const bad of ['0', '1.5', 'many', '129']) {
      assert.deepEqual(errorsOf(`service:\n  workers: ${bad}\n`), [
        `estuary.yaml:2: service.workers: expected a number of processes 1-128 or "auto", got ${/^[\d.]+$/.test(bad) ? bad : `"${bad}"`}`,
      ]);
    }
  });

  it('an output client tls: cert_file and key_file go together', () => {
    assert.deepEqual(
      errorsOf(`outputs:
  - type: loki
    url: https://loki:3100/loki/api/v1/push
    tls: { cert_file: /c.pem }
  - type: elasticsearch
    tls: { key_file: /k.pem, verify: false }
`),
      [
        'estuary.yaml:4: outputs[0].tls: cert_file and key_file go together',
        'estuary.yaml:6: outputs[1].tls: cert_file and key_file go together',
      ],
    );
  });

  it('masks secrets for printing', () => {
    assert.deepEqual(
      maskSecrets({ auth_tokens: ['abc'], shared_key: 'k', redis_url: 'redis://user:pw@host:6379', port: 1 }),
      { auth_tokens: ['******'], shared_key: '******', redis_url: 'redis://user:******@host:6379', port: 1 },
    );
    // Headers (any name), API keys spelt every way, and credentials in a URL's query.
    assert.deepEqual(
      maskSecrets({
        headers: { Authorization: 'Bearer s3cret', 'X-Custom': 'v' },
        apikey: 'k1',
        'api-key': 'k2',
        url: 'https://hook.example/in?token=abc&x=1&sig=zz',
        dsn: 'https://k@sentry.example/1',
        auth_type: 'basic',
      }),
      {
        headers: { Authorization: '******', 'X-Custom': '******' },
        apikey: '******',
        'api-key': '******',
        url: 'https://hook.example/in?token=******&x=1&sig=******',
        dsn: '******',
        auth_type: 'basic',
      },
    );
  });

  it('accepts the shipped default config and every example', () => {
    const env = {
      ESTUARY_HTTP_TOKEN: 't',
      ESTUARY_ADMIN_TOKEN: 'a',
      FORWARD_SHARED_KEY: 'k',
      ES_API_KEY: 'k',
    };
    loadConfigFile('config/estuary.yaml', registry, env);
    for (const f of readdirSync('config/examples')) loadConfigFile(join('config/examples', f), registry, env);
  });
});

describe('estuary check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'estuary-check-'));
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, ['src/cli.ts', ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });

  it('prints the resolved config with secrets masked and exits 0', () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      'inputs:\n  - { type: http, auth_tokens: ["${TOK}"] }\noutputs:\n  - { type: stdout }\n',
    );
    const r = cli(['check', '-c', file], { TOK: 'hunter2' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /auth_tokens:\n\s+- "\*\*\*\*\*\*"/);
    assert.doesNotMatch(r.stdout + r.stderr, /hunter2/);
  });

  it('exits 1 with file:line: key: messages', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'outputs:\n  - { type: stdout, format: xml }\n');
    const r = cli(['check', '-c', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^${file}:2: outputs\\[0\\]\\.format: expected one of`));
  });

  it('has help for each command and prints the version', () => {
    for (const cmd of ['run', 'check', 'version']) {
      const r = cli([cmd, '--help']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, new RegExp(`Usage: estuary ${cmd}`));
    }
    assert.match(cli(['version']).stdout, /^estuary \d+\.\d+\.\d+ \(node v24/);
    assert.equal(cli(['frobnicate']).status, 2);
  });
});
