import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createClient, describeTarget, redisSettings } from '../../src/buffer/redis/connection.ts';
import { builtinRegistry } from '../../src/builtins.ts';
import { loadConfig, maskSecrets } from '../../src/config/load.ts';
import { configErrors } from '../support/config.ts';

const registry = builtinRegistry();
const load = (buffer: string) =>
  loadConfig(`service:\n  buffer: ${buffer}\noutputs:\n  - { type: "null" }\n`, 'e.yaml', registry, {});

function errorsOf(buffer: string): string[] {
  return configErrors(() => load(buffer));
}

describe('service.buffer for type redis', () => {
  it('takes redis_url, prefix, WAIT and recovery_timeout, with defaults', () => {
    const b = load('{ type: redis, redis_url: "rediss://estuary:s3cret@redis.example:6380/2" }').service
      .buffer;
    assert.deepEqual(
      { ...redisSettings(b), url: undefined },
      {
        url: undefined,
        sentinels: undefined,
        sentinelName: undefined,
        sentinelPassword: undefined,
        clusterNodes: undefined,
        prefix: 'estuary',
        waitReplicas: 0,
        waitTimeoutMs: 1000,
        recoveryTimeoutMs: 30_000,
      },
    );
    const custom = load(
      '{ type: redis, redis_url: "redis://r:6379", prefix: logs, wait_replicas: 1, wait_timeout: 250ms, recovery_timeout: 10s }',
    ).service.buffer;
    assert.deepEqual(
      [custom.prefix, custom.wait_replicas, custom.wait_timeout, custom.recovery_timeout],
      ['logs', 1, 250, 10_000],
    );
    const sentinel = load(
      '{ type: redis, sentinels: ["s0:26379", "[::1]:26380"], sentinel_name: mymaster, sentinel_password: pw }',
    ).service.buffer;
    assert.deepEqual(sentinel.sentinels, [
      { host: 's0', port: 26379 },
      { host: '::1', port: 26380 },
    ]);
    assert.equal(describeTarget(redisSettings(sentinel)), 'sentinel mymaster via s0:26379,::1:26380');
    const cluster = load('{ type: redis, cluster_nodes: ["r0:6379", "r1:6379"] }').service.buffer;
    assert.equal(describeTarget(redisSettings(cluster)), 'cluster r0:6379,r1:6379');
  });

  it('reports what is missing or malformed, with the key', () => {
    assert.deepEqual(errorsOf('{ type: redis }'), [
      'e.yaml:2: service.buffer.redis_url: required with type redis (or sentinels + sentinel_name, or cluster_nodes)',
    ]);
    assert.deepEqual(errorsOf('{ type: redis, sentinels: ["s:26379"] }'), [
      'e.yaml:2: service.buffer.sentinel_name: required with sentinels',
    ]);
    assert.deepEqual(
      errorsOf('{ type: redis, sentinels: ["s:1"], sentinel_name: m, cluster_nodes: ["c:1"] }'),
      ['e.yaml:2: service.buffer.cluster_nodes: use either sentinels or cluster_nodes'],
    );
    assert.match(
      errorsOf('{ type: redis, redis_url: "http://x" }')[0]!,
      /redis_url: expected a redis:\/\/ or rediss:\/\/ URL/,
    );
    assert.match(
      errorsOf('{ type: redis, cluster_nodes: ["nope"] }')[0]!,
      /cluster_nodes\[0\]: expected host:port, got "nope"/,
    );
    assert.match(
      errorsOf('{ type: redis, redis_url: "redis://x", prefix: "a{b}" }')[0]!,
      /prefix: expected no braces/,
    );
    assert.match(
      errorsOf('{ type: redis, redis_url: "redis://x", recovery_timeout: 100ms }')[0]!,
      /at least 1s/,
    );
    // A memory buffer ignores the redis keys being absent.
    assert.equal(load('{ type: memory }').service.buffer.type, 'memory');
  });

  it('never shows the password (estuary check)', () => {
    const c = loadConfig(
      'service:\n  buffer: { type: redis, redis_url: "redis://app:hunter2@r:6379", sentinels: ["s:1"], sentinel_name: m, sentinel_password: hunter3 }\n',
      'e.yaml',
      registry,
      {},
    );
    const shown = JSON.stringify(maskSecrets(c.resolved));
    assert.doesNotMatch(shown, /hunter/);
    assert.match(shown, /redis:\/\/app:\*\*\*\*\*\*@r:6379/);
  });

  it('connects with the URL’s user, password, db and TLS', () => {
    const b = load('{ type: redis, redis_url: "rediss://ops%40x:p%3Ass@redis.example:6380/3" }').service
      .buffer;
    const client = createClient(redisSettings(b), { lazyConnect: true }) as Redis;
    const o = client.options;
    assert.deepEqual(
      [o.host, o.port, o.username, o.password, o.db, Boolean(o.tls)],
      ['redis.example', 6380, 'ops@x', 'p:ss', 3, true],
    );
    client.disconnect();
  });

  it('a tls: block turns TLS on with its options; SNI is sent for a host name, not for an IP', () => {
    const ip = load('{ type: redis, redis_url: "redis://127.0.0.1:6380", tls: { verify: false } }').service
      .buffer;
    const a = createClient(redisSettings(ip), { lazyConnect: true }) as Redis;
    assert.deepEqual(a.options.tls, {
      ca: undefined,
      cert: undefined,
      key: undefined,
      rejectUnauthorized: false,
    });
    a.disconnect();
    const named = load('{ type: redis, redis_url: "rediss://redis.example:6380" }').service.buffer;
    const b = createClient(redisSettings(named), { lazyConnect: true }) as Redis;
    assert.deepEqual(b.options.tls, { servername: 'redis.example' });
    b.disconnect();
    assert.throws(
      () =>
        redisSettings(
          load('{ type: redis, redis_url: "rediss://r:1", tls: { ca_file: /nonexistent/ca.pem } }').service
            .buffer,
        ),
      /tls\.ca_file: cannot read \/nonexistent\/ca\.pem/,
    );
  });
});
