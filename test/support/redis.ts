import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import type { RedisSettings } from '../../src/buffer/redis/connection.ts';
import { makeBatch } from '../../src/core/batch.ts';
import { EventTime } from '../../src/core/event-time.ts';
import { unpack } from '../../src/core/msgpack.ts';
import { encodePackedForward } from '../../src/protocol/forward/modes.ts';
import { RawClient } from './forward-client.ts';
import { freePort, waitFor } from './wait.ts';

/**
 * A master waits `repl-diskless-sync-delay` (5 s) for more replicas before a full sync: with
 * one replica that is only a pause, in every start and every rejoin.
 */
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];

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
  private extra: string[];
  /** TLS only (`--port 0`, `--tls-port`): the certificate and key it serves. */
  readonly tls: { cert: string; key: string } | undefined;
  private proc: ChildProcess | undefined;
  private log = '';

  protected constructor(port: number, dir: string, extra: string[], tls?: { cert: string; key: string }) {
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

  /** redis-server's command line. */
  protected args(): string[] {
    return [
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
    ];
  }

  async start(): Promise<void> {
    const proc = spawn('redis-server', this.args(), { stdio: ['ignore', 'pipe', 'pipe'] });
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
        return (await this.command('PING')) === '+PONG';
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

  /** Restarts it (same port and dir) with `extra` in place of the options it was started with. */
  async restartWith(extra: string[]): Promise<void> {
    this.extra = extra;
    await this.restart();
  }

  /** Kills the server and removes its dir. Safe twice. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** One command over a raw connection; the reply's first line (`+OK`, `:3`, `$5`…) and what follows. */
  command(...args: string[]): Promise<string> {
    return command(this.port, this.tls !== undefined, ...args).then(({ raw }) => raw);
  }

  /** One command, its reply parsed; an error reply rejects. */
  async query(...args: string[]): Promise<Resp> {
    const { value } = await command(this.port, this.tls !== undefined, ...args);
    if (value instanceof Error) throw value;
    return value;
  }

  /** A reply that is an array of strings (`SENTINEL GET-MASTER-ADDR-BY-NAME`, `SENTINEL MASTER`). */
  async strings(...args: string[]): Promise<string[]> {
    const value = await this.query(...args);
    if (!Array.isArray(value)) throw new Error(`${args.join(' ')}: expected an array, got ${String(value)}`);
    return value.map(String);
  }
}

/** A RESP2 reply: simple and bulk strings, integers, nil, errors, arrays. */
export type Resp = string | number | null | Error | Resp[];

/** Sends one RESP command and resolves with the reply, raw and parsed, once it is complete. */
function command(port: number, tls: boolean, ...args: string[]): Promise<{ raw: string; value: Resp }> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : connect(port, '127.0.0.1');
    let reply = Buffer.alloc(0);
    socket.setTimeout(2000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('error', reject);
    socket.on('data', (d: Buffer) => {
      reply = Buffer.concat([reply, d]);
      const parsed = parseResp(reply, 0);
      if (parsed) {
        socket.end();
        resolve({ raw: reply.toString().trimEnd(), value: parsed.value });
      }
    });
    socket.on(tls ? 'secureConnect' : 'connect', () => {
      socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    });
  });
}

/** The reply starting at `at`, and where it ends; undefined while more bytes are needed. */
function parseResp(buf: Buffer, at: number): { value: Resp; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const line = buf.toString('utf8', at + 1, eol);
  switch (String.fromCharCode(buf[at]!)) {
    case '+':
      return { value: line, end: eol + 2 };
    case '-':
      return { value: new Error(line), end: eol + 2 };
    case ':':
      return { value: Number(line), end: eol + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: eol + 2 };
      if (buf.length < eol + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', eol + 2, eol + 2 + len), end: eol + 2 + len + 2 };
    }
    case '*': {
      const len = Number(line);
      if (len < 0) return { value: null, end: eol + 2 };
      const items: Resp[] = [];
      let end = eol + 2;
      for (let i = 0; i < len; i++) {
        const item = parseResp(buf, end);
        if (!item) return undefined;
        items.push(item.value);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      throw new Error(`not a RESP reply: ${buf.toString('utf8', at, eol)}`);
  }
}

/** A value of `INFO <section>`, e.g. info(server, 'memory', 'used_memory'). */
export async function info(server: RedisServer, section: string, field: string): Promise<string | undefined> {
  const text = await server.command('INFO', section);
  return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim();
}

export interface ClusterOptions {
  /** Replicas of each master (`redis-cli --cluster create --cluster-replicas`). */
  replicas?: number;
  /** `cluster-node-timeout`: how long a master may be silent before its replica takes over. */
  nodeTimeoutMs?: number;
}

/**
 * `masters` masters with `cluster-enabled yes` (and `replicas` replicas of each), joined by
 * `redis-cli --cluster create`. Resolves once every node reports `cluster_state:ok`, knows
 * every other, and every replica is in sync with its master.
 */
export async function startCluster(
  masters = 3,
  { replicas = 0, nodeTimeoutMs = 2000 }: ClusterOptions = {},
): Promise<{ nodes: RedisServer[]; stop: () => Promise<void> }> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++)
    nodes.push(
      await RedisServer.start([
        ...FAST_SYNC,
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
        '--cluster-node-timeout',
        String(nodeTimeoutMs),
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
      String(replicas),
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        for (const n of nodes) {
          const state = await n.command('CLUSTER', 'INFO');
          if (!state.includes('cluster_state:ok')) return false;
          if (!state.includes(`cluster_known_nodes:${nodes.length}`)) return false;
          if ((await info(n, 'replication', 'role')) === 'slave' && !(await replicaInSync(n))) return false;
          // Roles travel by gossip: until every node sees every replica as one, a node may
          // still take another's replica for a master.
          const seen = await clusterNodes(n);
          if (seen.filter((m) => m.flags.includes('slave')).length !== masters * replicas) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, what: 'cluster_state:ok on every node, replicas in sync' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

/** One line of `CLUSTER NODES`. */
export interface ClusterNode {
  id: string;
  port: number;
  /** `myself`, `master`, `slave`, `fail?`, `fail`, … */
  flags: string[];
  /** The master's id, for a replica. */
  masterId: string | undefined;
  /** Slot ranges served (a master), inclusive. */
  slots: [number, number][];
}

/** The cluster as `via` sees it. */
export async function clusterNodes(via: RedisServer): Promise<ClusterNode[]> {
  const text = String(await via.query('CLUSTER', 'NODES'));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, address, flags, master, , , , , ...slots] = line.trim().split(' ');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)?.[1]),
        flags: flags!.split(','),
        masterId: master === '-' ? undefined : master,
        // `[slot->-node]` entries are slots being migrated, not served.
        slots: slots
          .filter((r) => !r.startsWith('['))
          .map((r) => {
            const [from, to] = r.split('-').map(Number);
            return [from!, to ?? from!] as [number, number];
          }),
      };
    });
}

/** The master serving `slot`, as `via` sees it (a node marked failed is not serving). */
export async function slotMaster(via: RedisServer, slot: number): Promise<ClusterNode | undefined> {
  return (await clusterNodes(via)).find(
    (n) =>
      n.flags.includes('master') &&
      !n.flags.includes('fail') &&
      n.slots.some(([a, b]) => a <= slot && slot <= b),
  );
}

/**
 * Moves `slot` from the master serving it to `to`, as `redis-cli --cluster reshard` does:
 * IMPORTING on the target, MIGRATING on the source, its keys MIGRATEd `batch` at a time,
 * then the slot assigned to the target on every master. A batch with a key the target
 * already has (BUSYKEY: something wrote it there during the move) is sent again with
 * REPLACE, as `--cluster-replace` does; resolves with the keys moved and how many batches
 * needed that.
 */
export async function migrateSlot(
  nodes: RedisServer[],
  slot: number,
  to: RedisServer,
  { batch = 10 } = {},
): Promise<{ keys: number; busy: number }> {
  const owner = await slotMaster(to, slot);
  const from = nodes.find((n) => n.port === owner?.port);
  const target = (await clusterNodes(to)).find((n) => n.flags.includes('myself'))!;
  if (!owner || !from || from === to) throw new Error(`slot ${slot}: no other master to move it from`);
  await to.query('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', owner.id);
  await from.query('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', target.id);
  let keys = 0;
  let busy = 0;
  for (;;) {
    const some = await from.strings('CLUSTER', 'GETKEYSINSLOT', String(slot), String(batch));
    if (some.length === 0) break;
    const migrate = ['MIGRATE', '127.0.0.1', String(to.port), '', '0', '5000'];
    try {
      await from.query(...migrate, 'KEYS', ...some);
    } catch (err) {
      if (!/BUSYKEY/.test((err as Error).message)) throw err;
      await from.query(...migrate, 'REPLACE', 'KEYS', ...some);
      busy += 1;
    }
    keys += some.length;
  }
  // The target first (as redis-cli does): it owns the slot before the source stops sending
  // clients on to it. Then every other master that is up (SETSLOT is refused by replicas).
  await to.query('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  for (const n of nodes) {
    if (n === to || (await info(n, 'replication', 'role').catch(() => undefined)) !== 'master') continue;
    await n.query('CLUSTER', 'SETSLOT', String(slot), 'NODE', target.id);
  }
  return { keys, busy };
}

/** A replica whose link to its master is up and whose initial sync is done. */
async function replicaInSync(node: RedisServer): Promise<boolean> {
  return (
    (await info(node, 'replication', 'master_link_status')) === 'up' &&
    (await info(node, 'replication', 'master_sync_in_progress')) === '0'
  );
}

/** A Redis Sentinel: `redis-server <its dir>/sentinel.conf --sentinel` (Sentinel rewrites its conf). */
export class SentinelServer extends RedisServer {
  /** Set in the conf rather than generated, so each sentinel can name the others up front. */
  readonly myid = randomBytes(20).toString('hex');

  static async create(): Promise<SentinelServer> {
    return new SentinelServer(await freePort(), mkdtempSync(join(tmpdir(), 'estuary-sentinel-')), []);
  }

  configure(lines: string[]): void {
    writeFileSync(
      join(this.dir, 'sentinel.conf'),
      [
        `port ${this.port}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        'logfile ""',
        `sentinel myid ${this.myid}`,
        ...lines,
        '',
      ].join('\n'),
    );
  }

  protected override args(): string[] {
    return [join(this.dir, 'sentinel.conf'), '--sentinel'];
  }
}

export interface SentinelOptions {
  /** The master's name at the sentinels (`sentinel_name`). */
  name?: string;
  /** `down-after-milliseconds`: how long the master may be silent before it is failed over. */
  downAfterMs?: number;
  /** `failover-timeout`; a failover that did not start is tried again after twice this. */
  failoverTimeoutMs?: number;
}

/**
 * A master, one replica of it and three sentinels (quorum 2), each a process of its own on
 * a free port with its own dir. The sentinels are told of each other and of the replica in
 * their conf, so they can fail over at once rather than after discovering them.
 */
export class SentinelGroup {
  readonly name: string;
  /** [0] the first master, [1] its replica. */
  readonly nodes: RedisServer[];
  readonly sentinels: SentinelServer[];

  private constructor(name: string, nodes: RedisServer[], sentinels: SentinelServer[]) {
    this.name = name;
    this.nodes = nodes;
    this.sentinels = sentinels;
  }

  static async start({
    name = 'estuary-test',
    downAfterMs = 1000,
    failoverTimeoutMs = 3000,
  }: SentinelOptions = {}): Promise<SentinelGroup> {
    const master = await RedisServer.start(FAST_SYNC);
    const group = new SentinelGroup(name, [master], []);
    try {
      group.nodes.push(
        await RedisServer.start([...FAST_SYNC, '--replicaof', '127.0.0.1', String(master.port)]),
      );
      await waitFor(() => replicaInSync(group.nodes[1]!), { timeoutMs: 10_000, what: 'the replica in sync' });
      for (let i = 0; i < 3; i++) group.sentinels.push(await SentinelServer.create());
      for (const s of group.sentinels)
        s.configure([
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
          `sentinel failover-timeout ${name} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${name} 1`,
          `sentinel known-replica ${name} 127.0.0.1 ${group.nodes[1]!.port}`,
          ...group.sentinels
            .filter((o) => o !== s)
            .map((o) => `sentinel known-sentinel ${name} 127.0.0.1 ${o.port} ${o.myid}`),
        ]);
      await Promise.all(group.sentinels.map((s) => s.start()));
      await waitFor(
        async () => {
          for (const s of group.sentinels) {
            const fields = pairs(await s.strings('SENTINEL', 'MASTER', name));
            if (fields.flags !== 'master' || fields['num-slaves'] !== '1') return false;
            if (fields['num-other-sentinels'] !== '2') return false;
          }
          return true;
        },
        { timeoutMs: 10_000, what: 'every sentinel watching the master, its replica and the others' },
      );
    } catch (err) {
      await group.stop();
      throw err;
    }
    return group;
  }

  /** `service.buffer.sentinels`. */
  get addresses(): string[] {
    return this.sentinels.map((s) => `127.0.0.1:${s.port}`);
  }

  /** The master every sentinel names, or undefined while they disagree or one does not answer. */
  async master(): Promise<RedisServer | undefined> {
    const ports = new Set<string>();
    for (const s of this.sentinels) {
      const [, port] = await s.strings('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name);
      ports.add(String(port));
    }
    if (ports.size !== 1) return undefined;
    const [port] = ports;
    return this.nodes.find((n) => String(n.port) === port);
  }

  /** Once the sentinels agree on a master other than `old`, and it says it is one. */
  async waitForFailover(old: RedisServer, timeoutMs = 20_000): Promise<RedisServer> {
    return waitFor(
      async () => {
        const now = await this.master();
        if (!now || now === old) return undefined;
        return (await info(now, 'replication', 'role')) === 'master' ? now : undefined;
      },
      { timeoutMs, intervalMs: 50, what: `the sentinels to promote a replica of port ${old.port}` },
    );
  }

  /**
   * Starts `node` again (same port and dir) as a replica of the master the sentinels name,
   * as a Redis pod restarted after a failover does; resolves once it is in sync.
   */
  async rejoin(node: RedisServer): Promise<void> {
    const master = await this.master();
    if (!master || master === node) throw new Error('no other master to rejoin');
    await node.restartWith([...FAST_SYNC, '--replicaof', '127.0.0.1', String(master.port)]);
    await waitFor(() => replicaInSync(node), { timeoutMs: 10_000, what: `port ${node.port} in sync again` });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.nodes].map((n) => n.stop()));
  }
}

/** [k1, v1, k2, v2, …] as an object. */
function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

export interface ForwardLoadOptions {
  /** Concurrent senders, each on a connection of its own. */
  senders?: number;
  /** Records per message. */
  records?: number;
  tag?: string;
  /** A message not acked within this is sent again, on a new connection. */
  ackTimeoutMs?: number;
}

/** Stops the load, waits for every acked record to be delivered, and asserts none was lost. */
export async function assertAllDelivered(
  t: TestContext,
  load: ForwardLoad,
  sink: { delivered: { record: Record<string, unknown> }[] },
  summary: string,
): Promise<void> {
  await load.stop();
  const acked = load.acked;
  const delivered = () => new Set(sink.delivered.map((entry) => entry.record.id as string));
  // Past the timeout, the counts below say what is missing.
  await waitFor(
    () => {
      const got = delivered();
      for (const id of acked) if (!got.has(id)) return false;
      return true;
    },
    { timeoutMs: 20_000, what: 'every acked record delivered' },
  ).catch(() => {});
  const got = delivered();
  const lost = [...acked].filter((id) => !got.has(id)).length;
  const unknown = [...got].filter((id) => !load.sent.has(id)).length;
  t.diagnostic(
    `${summary}; acked ${acked.size}, delivered ${sink.delivered.length} (${got.size} distinct, ` +
      `${sink.delivered.length - got.size} duplicates), lost ${lost}, tries without an ack ${load.unacked}`,
  );
  assert.equal(lost, 0, 'every acked record delivered');
  assert.equal(unknown, 0, 'nothing delivered that was not sent');
}

/**
 * Forward senders as Fluent Bit's with `require_ack_response`, for failover tests: each sends
 * a PackedForward message with a `chunk`, waits for its ack, and sends the same chunk again
 * on a new connection when the connection closes (Estuary refusing it) or no ack comes in
 * time. Every record carries an id of its own; `acked` holds those of acked messages.
 */
export class ForwardLoad {
  /** Ids of the records of every message acked. */
  readonly acked = new Set<string>();
  /** Ids of every record sent, acked or not. */
  readonly sent = new Set<string>();
  /** Tries that ended without an ack. */
  unacked = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    port: number,
    { senders = 4, records = 50, tag = 'app.load', ackTimeoutMs = 10_000 }: ForwardLoadOptions = {},
  ) {
    this.done = Promise.all(
      Array.from({ length: senders }, (_, s) => this.sender(port, s, records, tag, ackTimeoutMs)),
    ).then(() => {});
  }

  /** Sends no new message; resolves once every sender's last one is acked or given up. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }

  private async sender(port: number, s: number, records: number, tag: string, ackTimeoutMs: number) {
    const time = new EventTime(1_700_000_000, 0);
    let client: RawClient | undefined;
    for (let n = 0; !this.stopped; n++) {
      const chunk = `${s}-${n}`;
      const ids = Array.from({ length: records }, (_, i) => `${chunk}-${i}`);
      const message = encodePackedForward(
        tag,
        makeBatch(
          tag,
          ids.map((id) => ({ time, record: { id } })),
        ).payload,
        { chunk },
      );
      for (const id of ids) this.sent.add(id);
      for (;;) {
        client = client?.closed === false ? client : await RawClient.connect({ port }).catch(() => undefined);
        if (client) {
          const before = client.frames.length;
          await client.send(message).catch(() => {});
          if (await nextFrame(client, before, ackTimeoutMs)) {
            if ((unpack(client.frames[before]!) as { ack?: string }).ack !== chunk)
              throw new Error(`sender ${s}: an ack for another chunk than ${chunk}`);
            for (const id of ids) this.acked.add(id);
            break;
          }
          client.close();
          client = undefined;
        }
        this.unacked += 1;
        if (this.stopped) break;
        // The sender's own backoff before it sends the chunk again.
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    client?.close();
  }
}

/** True once `client` has more than `count` frames; false if it closes or `timeoutMs` passes first. */
function nextFrame(client: RawClient, count: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const settle = () => {
      clearTimeout(timer);
      client.socket.off('data', check);
      client.socket.off('close', check);
      resolve(client.frames.length > count);
    };
    // Registered after RawClient's own listeners, so frames and closed are up to date here.
    const check = () => {
      if (client.frames.length > count || client.closed) settle();
    };
    const timer = setTimeout(settle, timeoutMs);
    client.socket.on('data', check);
    client.socket.on('close', check);
    check();
  });
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
