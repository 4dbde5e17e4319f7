import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { RedisSettings } from '../../src/buffer/redis/connection.ts';
import { freePort, waitFor } from './wait.ts';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/**
 * A real redis-server of our own: a free port on 127.0.0.1 (never the machine's shared
 * 6379), its own temp dir, AOF with fsync on every write. It can be SIGKILLed and started
 * again on the same port and dir, as a crashed Redis would be.
 */
export class RedisServer {
  readonly port: number;
  readonly dir: string;
  private readonly extra: string[];
  /** TLS only (`--port 0`, `--tls-port`): the certificate and key it serves. */
  readonly tls: { cert: string; key: string } | undefined;
  private proc: ChildProcess | undefined;
  private log = '';

  private constructor(port: number, dir: string, extra: string[], tls?: { cert: string; key: string }) {
    this.port = port;
    this.dir = dir;
    this.extra = extra;
    this.tls = tls;
  }

  static async start(extra: string[] = [], tls?: { cert: string; key: string }): Promise<RedisServer> {
    const server = new RedisServer(
      await freePort(),
      mkdtempSync(join(tmpdir(), 'estuary-redis-')),
      extra,
      tls,
    );
    await server.start();
    return server;
  }

  /** Speaking TLS only, with `tls` (PEM files) as its certificate; clients are not asked for one. */
  static startTls(tls: { cert: string; key: string }, extra: string[] = []): Promise<RedisServer> {
    return RedisServer.start(extra, tls);
  }

  get url(): string {
    return `${this.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const proc = spawn(
      'redis-server',
      [
        ...(this.tls
          ? [
              '--port',
              '0',
              '--tls-port',
              String(this.port),
              '--tls-cert-file',
              this.tls.cert,
              '--tls-key-file',
              this.tls.key,
              '--tls-ca-cert-file',
              this.tls.cert,
              '--tls-auth-clients',
              'no',
            ]
          : ['--port', String(this.port)]),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--dir',
        this.dir,
        '--logfile',
        '',
        ...this.extra,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    running.add(proc);
    proc.on('exit', () => running.delete(proc));
    for (const s of [proc.stdout!, proc.stderr!])
      s.on('data', (d: Buffer) => {
        this.log = (this.log + d.toString()).slice(-4000);
      });
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`redis-server exited: ${this.log}`);
        return (await command(this.port, this.tls !== undefined, 'PING')) === '+PONG';
      },
      { timeoutMs: 10_000, what: `redis-server on port ${this.port}` },
    );
  }

  /** SIGSTOP: the process freezes with its sockets open, as a hung Redis (or a paused VM) does. */
  pause(): void {
    this.proc?.kill('SIGSTOP');
  }

  /** SIGCONT after pause(). */
  resume(): void {
    this.proc?.kill('SIGCONT');
  }

  /** SIGKILL: no shutdown, no final fsync beyond what appendfsync always did. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** Kills the server and removes its dir. Safe twice. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** One command over a raw connection; the reply's first line (`+OK`, `:3`, `$5`…) and what follows. */
  command(...args: string[]): Promise<string> {
    return command(this.port, this.tls !== undefined, ...args);
  }
}

/** Sends one RESP command and resolves with the raw reply once it looks complete. */
function command(port: number, tls: boolean, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(2000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('error', reject);
    socket.on('data', (d) => {
      reply += d.toString();
      if (complete(reply)) {
        socket.end();
        resolve(reply.trimEnd());
      }
    });
    socket.on(tls ? 'secureConnect' : 'connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
  });
}

function complete(reply: string): boolean {
  if (!reply.endsWith('\r\n')) return false;
  if (reply[0] !== '$') return true;
  const len = Number(reply.slice(1, reply.indexOf('\r\n')));
  return len < 0 || Buffer.byteLength(reply) >= reply.indexOf('\r\n') + 2 + len + 2;
}

/** A value of `INFO <section>`, e.g. info(server, 'memory', 'used_memory'). */
export async function info(server: RedisServer, section: string, field: string): Promise<string | undefined> {
  const text = await server.command('INFO', section);
  return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim();
}

/**
 * Three masters with `cluster-enabled yes`, joined by `redis-cli --cluster create`, no
 * replicas. Resolves once every node reports `cluster_state:ok`.
 */
export async function startCluster(
  masters = 3,
): Promise<{ nodes: RedisServer[]; stop: () => Promise<void> }> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters; i++)
    nodes.push(
      await RedisServer.start([
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        '2000',
      ]),
    );
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    await promisify(execFile)('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        for (const n of nodes)
          if (!(await n.command('CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
        return true;
      },
      { timeoutMs: 15_000, what: 'cluster_state:ok on every node' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

/** Backend settings for a test Redis: short recovery_timeout so recovery shows in seconds. */
export function settingsFor(url: string | undefined, overrides: Partial<RedisSettings> = {}): RedisSettings {
  return {
    url,
    sentinels: undefined,
    sentinelName: undefined,
    sentinelPassword: undefined,
    clusterNodes: undefined,
    prefix: 'estuary',
    waitReplicas: 0,
    waitTimeoutMs: 1000,
    recoveryTimeoutMs: 3000,
    ...overrides,
  };
}
