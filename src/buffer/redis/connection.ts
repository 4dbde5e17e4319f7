import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ServiceBufferConfig } from '../../config/schema.ts';
import { readClientTls } from '../../config/values.ts';
import type { RedisClient } from './scripts.ts';

/** What the redis backend needs from `service.buffer`. */
export interface RedisSettings {
  url: string | undefined;
  sentinels: { host: string; port: number }[] | undefined;
  sentinelName: string | undefined;
  sentinelPassword: string | undefined;
  clusterNodes: { host: string; port: number }[] | undefined;
  prefix: string;
  waitReplicas: number;
  waitTimeoutMs: number;
  recoveryTimeoutMs: number;
  /** From `tls:` (files read): CA, client certificate, verify. Set, TLS is on. */
  tls?: Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> | undefined;
}

/** `configDir`: where `tls.*_file` paths are relative to. */
export function redisSettings(b: ServiceBufferConfig, configDir = process.cwd()): RedisSettings {
  return {
    ...(b.tls ? { tls: readClientTls(b.tls, configDir) } : {}),
    url: b.redis_url,
    sentinels: b.sentinels,
    sentinelName: b.sentinel_name,
    sentinelPassword: b.sentinel_password,
    clusterNodes: b.cluster_nodes,
    prefix: b.prefix,
    waitReplicas: b.wait_replicas,
    waitTimeoutMs: b.wait_timeout,
    recoveryTimeoutMs: b.recovery_timeout,
  };
}

/** Where to connect, without secrets: for log lines. */
export function describeTarget(s: RedisSettings): string {
  if (s.clusterNodes) return `cluster ${s.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  if (s.sentinels)
    return `sentinel ${s.sentinelName} via ${s.sentinels.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const url = new URL(s.url ?? 'redis://127.0.0.1:6379');
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** user, password, TLS and db from redis_url, and TLS from `tls:`. */
function fromUrl(
  url: string | undefined,
  tls: RedisSettings['tls'],
): RedisOptions & { host?: string; port?: number } {
  const u = url ? new URL(url) : undefined;
  const host = u ? u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1' : undefined;
  const db = u?.pathname.replace(/^\//, '');
  // SNI only for a name (Node refuses an IP address as servername); the name or IP is verified all the same.
  const tlsOn = u?.protocol === 'rediss:' || tls !== undefined;
  return {
    ...(host ? { host, port: u!.port ? Number(u!.port) : 6379 } : {}),
    ...(u?.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u?.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(tlsOn ? { tls: { ...(host && !isIP(host) ? { servername: host } : {}), ...tls } } : {}),
  };
}

/** A TLS failure to verify Redis's certificate, told as such (the cause is the CA, not the network). */
export function tlsVerifyError(err: Error): string | undefined {
  const code = (err as { code?: string }).code ?? '';
  if (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ALTNAME/.test(code) ||
    /certificate/i.test(err.message)
  )
    return `redis TLS: the server's certificate was not accepted (${err.message}): check service.buffer.tls.ca_file (the CA that signed Redis's tls-cert-file) and that the certificate names the host in redis_url`;
  return undefined;
}

/**
 * A client for the configured deployment (standalone, Sentinel or Cluster) with `options`
 * on top. Reconnects quickly and forever: the buffer must come back by itself.
 */
export function createClient(s: RedisSettings, options: RedisOptions): RedisClient {
  const { host, port, ...auth } = fromUrl(s.url, s.tls);
  const common: RedisOptions = {
    retryStrategy: (times) => Math.min(100 * times, 1000),
    ...options,
  };
  if (s.clusterNodes) {
    const { db: _db, ...clusterAuth } = auth;
    return new Cluster(s.clusterNodes, {
      redisOptions: { ...clusterAuth, ...common },
      clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      enableAutoPipelining: options.enableAutoPipelining ?? false,
      enableOfflineQueue: options.enableOfflineQueue ?? true,
      ...(options.maxRetriesPerRequest === undefined
        ? {}
        : { maxRetriesPerRequest: options.maxRetriesPerRequest }),
    });
  }
  if (s.sentinels) {
    return new Redis({
      ...auth,
      ...common,
      sentinels: s.sentinels,
      name: s.sentinelName!,
      ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
      ...(auth.tls ? { enableTLSForSentinelMode: true, sentinelTLS: auth.tls } : {}),
    });
  }
  return new Redis({ host, port, ...auth, ...common });
}
