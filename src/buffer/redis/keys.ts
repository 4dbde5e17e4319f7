/**
 * Every Redis key the redis buffer writes, named here and nowhere else (the Lua scripts get
 * their key names from `LUA_KEYS` below, built from the same table).
 *
 * All keys of one output share the hash tag `{<prefix>:out:<id>}`, so in Redis Cluster they
 * live in one slot and a Lua script can change them together.
 *
 *   {p:out:ID}:open          HASH    replica id → the id of its open chunk
 *   {p:out:ID}:leases        ZSET    replica id → lease expiry (ms, Redis clock)
 *   {p:out:ID}:sealed        ZSET    chunk id → seal sequence: every sealed chunk, oldest first;
 *                                    each is in exactly one of the three below
 *   {p:out:ID}:ready         ZSET    chunk id → seal sequence: may be leased now
 *   {p:out:ID}:retry         ZSET    chunk id → time of its next retry (Redis clock)
 *   {p:out:ID}:leased        ZSET    chunk id → lease expiry: being written by `owner`
 *   {p:out:ID}:stats         HASH    bytes, stage_count/_bytes, queue_count/_bytes,
 *                                    dl_chunks/_records/_bytes, dl_seq: kept by the scripts
 *   {p:out:ID}:c:CHUNK       LIST    frames, msgpack [tag, count, payload], one element per
 *                                    staged batch (a list, not APPEND to a string: Redis
 *                                    pre-allocates a growing string up to 2×, and keeps it)
 *   {p:out:ID}:m:CHUNK       HASH    count, bytes, created, replica, sealed, seq, retries,
 *                                    failing_since, owner (lease token), avoid, avoid_until
 *   {p:out:ID}:dead          ZSET    dead-letter id → sequence number (list order)
 *   {p:out:ID}:d:DEAD        LIST    frames of a dead-letter chunk
 *   {p:out:ID}:dm:DEAD       HASH    reason, attempts, time, count, bytes
 */

/** Fixed keys of an output, by name → suffix. */
const FIXED = {
  open: 'open',
  leases: 'leases',
  sealed: 'sealed',
  ready: 'ready',
  retry: 'retry',
  leased: 'leased',
  stats: 'stats',
  dead: 'dead',
} as const;

/** Per-chunk keys, by name → infix. */
const PER_ID = { chunk: 'c', meta: 'm', deadData: 'd', deadMeta: 'dm' } as const;

/** `{`, `}` and `%` in an output id are percent-encoded so the hash tag stays whole. */
function escapeId(id: string): string {
  return id.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export class OutputKeys {
  /** `{<prefix>:out:<id>}`: the hash tag, and KEYS[1] of every script. */
  readonly base: string;
  readonly open: string;
  readonly leases: string;
  readonly sealed: string;
  readonly ready: string;
  readonly retry: string;
  readonly leased: string;
  readonly stats: string;
  readonly dead: string;
  /**
   * The KEYS every script declares: the hash tag, which is never a key, and `stats`. While
   * the slot migrates between Cluster nodes its keys are split between them, and a script
   * run on either would see half the output (and leave keys the migration then overwrites):
   * declaring two keys, one always missing, makes Redis answer TRYAGAIN on both nodes (a
   * single missing key would be sent on with ASK and run on the target), so no script runs
   * until the slot has moved; meanwhile staging is refused as backpressure.
   */
  readonly script: readonly [string, string];

  constructor(prefix: string, outputId: string) {
    this.base = `{${prefix}:out:${escapeId(outputId)}}`;
    this.open = `${this.base}:${FIXED.open}`;
    this.leases = `${this.base}:${FIXED.leases}`;
    this.sealed = `${this.base}:${FIXED.sealed}`;
    this.ready = `${this.base}:${FIXED.ready}`;
    this.retry = `${this.base}:${FIXED.retry}`;
    this.leased = `${this.base}:${FIXED.leased}`;
    this.stats = `${this.base}:${FIXED.stats}`;
    this.dead = `${this.base}:${FIXED.dead}`;
    this.script = [this.base, this.stats];
  }

  chunk(id: string): string {
    return `${this.base}:${PER_ID.chunk}:${id}`;
  }
  meta(id: string): string {
    return `${this.base}:${PER_ID.meta}:${id}`;
  }
  deadData(id: string): string {
    return `${this.base}:${PER_ID.deadData}:${id}`;
  }
  deadMeta(id: string): string {
    return `${this.base}:${PER_ID.deadMeta}:${id}`;
  }
}

/** The same names for Lua: KEYS[1] is `OutputKeys.base`, the rest is built from it. */
export const LUA_KEYS = [
  'local B = KEYS[1]',
  ...Object.entries(FIXED).map(([name, suffix]) => `local K_${name.toUpperCase()} = B .. ':${suffix}'`),
  ...Object.entries(PER_ID).map(
    ([name, infix]) => `local function K_${name.toUpperCase()}(id) return B .. ':${infix}:' .. id end`,
  ),
].join('\n');
