import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { LUA_KEYS } from './keys.ts';

export type RedisClient = Redis | Cluster;
type Arg = string | number | Buffer;

/**
 * The buffer's state changes, each one Lua script so it is atomic: data and the totals in
 * `stats` never drift apart, whatever crashes between two scripts. Every script takes the
 * output's hash tag as KEYS[1] (see keys.ts), and reads the clock with Redis TIME, so
 * replicas with skewed clocks agree on ages and leases.
 */
const PRELUDE = `${LUA_KEYS}
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(v) return tonumber(v) or 0 end
local function stat(field, delta) redis.call('HINCRBY', K_STATS, field, delta) end
local function total() return num(redis.call('HGET', K_STATS, 'bytes')) end

-- An open chunk becomes sealed: immutable, queued for flushing.
local function seal(cid, now)
  local m = K_META(cid)
  local v = redis.call('HMGET', m, 'bytes', 'replica', 'sealed')
  local owner = v[2]
  if owner and redis.call('HGET', K_OPEN, owner) == cid then redis.call('HDEL', K_OPEN, owner) end
  if not owner or v[3] then return false end
  local bytes = num(v[1])
  redis.call('HSET', m, 'sealed', now)
  redis.call('ZADD', K_SEALED, now, cid)
  stat('stage_count', -1); stat('stage_bytes', -bytes)
  stat('queue_count', 1); stat('queue_bytes', bytes)
  return true
end

-- A sealed chunk leaves the buffer (delivered, dropped or dead-lettered). Returns its
-- record count, or false when it was already gone.
local function forget(cid, keep_data)
  local m = K_META(cid)
  local v = redis.call('HMGET', m, 'count', 'bytes')
  if not v[1] then return false end
  local bytes = num(v[2])
  redis.call('DEL', m)
  if not keep_data then redis.call('DEL', K_CHUNK(cid)) end
  redis.call('ZREM', K_SEALED, cid)
  redis.call('ZREM', K_RETRY, cid)
  stat('queue_count', -1); stat('queue_bytes', -bytes); stat('bytes', -bytes)
  return num(v[1])
end

-- Removes one dead-letter chunk; returns 1 and its record count, or 0, 0.
local function drop_dead(did)
  if redis.call('ZREM', K_DEAD, did) == 0 then return 0, 0 end
  local v = redis.call('HMGET', K_DEADMETA(did), 'count', 'bytes')
  redis.call('DEL', K_DEADMETA(did), K_DEADDATA(did))
  stat('dl_chunks', -1); stat('dl_records', -num(v[1])); stat('dl_bytes', -num(v[2]))
  return 1, num(v[1])
end

-- Registers a dead-letter chunk whose frames are already at K_DEADDATA(did), then drops
-- the oldest ones past max_size (the newest is always kept). Returns the records dropped.
local function add_dead(did, reason, attempts, count, bytes, now, max_size)
  local seq = redis.call('HINCRBY', K_STATS, 'dl_seq', 1)
  redis.call('HSET', K_DEADMETA(did), 'reason', reason, 'attempts', attempts, 'time', now,
    'count', count, 'bytes', bytes)
  redis.call('ZADD', K_DEAD, seq, did)
  stat('dl_chunks', 1); stat('dl_records', count); stat('dl_bytes', bytes)
  local dropped = 0
  while num(redis.call('HGET', K_STATS, 'dl_bytes')) > max_size and redis.call('ZCARD', K_DEAD) > 1 do
    local _, records = drop_dead(redis.call('ZRANGE', K_DEAD, 0, 0)[1])
    dropped = dropped + records
  end
  return dropped
end
`;

/** One Lua script; EVALSHA, and EVAL when Redis lost its script cache (a restart). */
export class Script {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;

  constructor(name: string, body: string) {
    this.name = name;
    this.lua = `${PRELUDE}\n${body}`;
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  /** Replies as strings and numbers. */
  run(client: RedisClient, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return client
      .call('evalsha', this.sha, keys.length, ...keys, ...args)
      .catch((err: unknown) =>
        isNoScript(err) ? client.call('eval', this.lua, keys.length, ...keys, ...args) : Promise.reject(err),
      );
  }

  /** Replies with bulk strings as Buffers. */
  runBuffer(client: RedisClient, keys: readonly string[], args: readonly Arg[]): Promise<unknown> {
    return client
      .callBuffer('evalsha', this.sha, keys.length, ...keys, ...args)
      .catch((err: unknown) =>
        isNoScript(err)
          ? client.callBuffer('eval', this.lua, keys.length, ...keys, ...args)
          : Promise.reject(err),
      );
  }
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/**
 * Appends a frame to the replica's open chunk, opening one (with the candidate id) when
 * there is none; seals a chunk that the frame would overflow, and one the frame fills.
 * ARGV: replica, candidate id, frame, count, bytes, chunk_limit_size, chunk_limit_records, lease ms.
 * Returns [total bytes, opened chunk id or '', sealed chunk ids…].
 */
export const STAGE = new Script(
  'stage',
  `
local replica, candidate, frame = ARGV[1], ARGV[2], ARGV[3]
local count, bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local limit_bytes, limit_records, lease = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local now = now_ms()
local out = {0, ''}
local cid = redis.call('HGET', K_OPEN, replica)
if cid then
  local v = redis.call('HMGET', K_META(cid), 'count', 'bytes')
  if num(v[2]) + bytes > limit_bytes or num(v[1]) + count > limit_records then
    if seal(cid, now) then out[#out + 1] = cid end
    cid = false
  end
end
if not cid then
  cid = candidate
  redis.call('HSET', K_OPEN, replica, cid)
  redis.call('HSET', K_META(cid), 'count', 0, 'bytes', 0, 'created', now, 'replica', replica, 'retries', 0)
  redis.call('ZADD', K_LEASES, now + lease, replica)
  stat('stage_count', 1)
  out[2] = cid
end
redis.call('RPUSH', K_CHUNK(cid), frame)
local c = redis.call('HINCRBY', K_META(cid), 'count', count)
local b = redis.call('HINCRBY', K_META(cid), 'bytes', bytes)
stat('stage_bytes', bytes); stat('bytes', bytes)
if (b >= limit_bytes or c >= limit_records) and seal(cid, now) then out[#out + 1] = cid end
out[1] = total()
return out
`,
);

/** Seals the replica's open chunk (only if it is ARGV[2], unless that is ''). Returns the sealed ids. */
export const SEAL = new Script(
  'seal',
  `
local cid = redis.call('HGET', K_OPEN, ARGV[1])
if not cid or (ARGV[2] ~= '' and cid ~= ARGV[2]) then return {} end
if seal(cid, now_ms()) then return {cid} end
return {}
`,
);

/**
 * Renews this replica's lease (or drops it when ARGV[4] is '1'), and seals the open chunks
 * of replicas whose lease expired, and any open chunk older than ARGV[3] ms (a lost timer).
 * ARGV: replica, lease ms, max open age ms, leaving. Returns the sealed ids.
 */
export const HEARTBEAT = new Script(
  'heartbeat',
  `
local replica, lease, max_age = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
if ARGV[4] == '1' then
  redis.call('ZREM', K_LEASES, replica)
else
  redis.call('ZADD', K_LEASES, now + lease, replica)
end
local sealed = {}
local open = redis.call('HGETALL', K_OPEN)
for i = 1, #open, 2 do
  local owner, cid = open[i], open[i + 1]
  local expires = tonumber(redis.call('ZSCORE', K_LEASES, owner))
  local created = tonumber(redis.call('HGET', K_META(cid), 'created'))
  if not created then
    redis.call('HDEL', K_OPEN, owner)
  elseif (owner ~= replica and (not expires or expires < now)) or created < now - max_age then
    if seal(cid, now) then sealed[#sealed + 1] = cid end
  end
end
redis.call('ZREMRANGEBYSCORE', K_LEASES, '-inf', now)
return sealed
`,
);

/**
 * Sealed chunks older than ARGV[1] ms whose BullMQ job is missing (a crash between seal and
 * Queue.add, or a job that failed and was removed); also forgets sealed ids whose chunk is
 * gone. KEYS[2]: BullMQ's job key prefix. ARGV: min age ms, offset, page size.
 * Returns [next offset or -1, chunk ids…].
 */
export const ORPHANS = new Script(
  'orphans',
  `
local now = now_ms()
local offset, page = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', K_SEALED, '-inf', now - tonumber(ARGV[1]), 'LIMIT', offset, page)
local out = {#ids < page and -1 or offset + page}
for _, cid in ipairs(ids) do
  if redis.call('EXISTS', K_META(cid)) == 0 then
    redis.call('ZREM', K_SEALED, cid)
    redis.call('ZREM', K_RETRY, cid)
    redis.call('DEL', K_CHUNK(cid))
  elseif redis.call('EXISTS', KEYS[2] .. cid) == 0 then
    out[#out + 1] = cid
  end
end
return out
`,
);

/**
 * Marks a sealed chunk as being flushed and returns [retries, failing_since or ''], or nil
 * when the chunk is gone (delivered, dropped, purged). The frames are read with an LRANGE
 * sent right behind it.
 */
export const BEGIN = new Script(
  'begin',
  `
local m = K_META(ARGV[1])
local v = redis.call('HMGET', m, 'retries', 'failing_since', 'sealed')
if not v[3] then return false end
redis.call('HSET', m, 'flushing', now_ms())
redis.call('ZREM', K_RETRY, ARGV[1])
return {v[1] or '0', v[2] or ''}
`,
);

/**
 * What a flush decided, in one step: rejected entries to the dead-letter queue, the chunk
 * rewritten to the entries to retry, then `done` (forget it), `retry` (after ARGV[6] ms) or
 * `dead` (move it to the dead-letter queue). With dead_letter off, dead entries are dropped.
 * ARGV: chunk id, action, attempts, dead_letter on (1/0), dead_letter max_size,
 *       retry delay ms, failing_since, dead id, reason,
 *       rewrite (1/0), frames, count, bytes,
 *       then per rejected group: dead id, reason, frames, count, bytes.
 * Returns [total bytes, chunk existed (1/0), records dropped as dead_letter_full,
 *          records dropped as dead_letter_disabled].
 */
export const SETTLE = new Script(
  'settle',
  `
local cid, action, attempts = ARGV[1], ARGV[2], ARGV[3]
local dl_on, dl_max = ARGV[4] == '1', tonumber(ARGV[5])
local now = now_ms()
local m = K_META(cid)
local exists = redis.call('EXISTS', m) == 1
local full, disabled = 0, 0
for i = 14, #ARGV, 5 do
  local count = tonumber(ARGV[i + 3])
  if dl_on then
    redis.call('RPUSH', K_DEADDATA(ARGV[i]), ARGV[i + 2])
    full = full + add_dead(ARGV[i], ARGV[i + 1], attempts, count, tonumber(ARGV[i + 4]), now, dl_max)
  else
    disabled = disabled + count
  end
end
if exists then
  if ARGV[10] == '1' then
    local old = num(redis.call('HGET', m, 'bytes'))
    local new = tonumber(ARGV[13])
    redis.call('DEL', K_CHUNK(cid))
    redis.call('RPUSH', K_CHUNK(cid), ARGV[11])
    redis.call('HSET', m, 'count', ARGV[12], 'bytes', new)
    stat('queue_bytes', new - old); stat('bytes', new - old)
  end
  if action == 'done' then
    forget(cid)
  elseif action == 'retry' then
    redis.call('HINCRBY', m, 'retries', 1)
    redis.call('HSETNX', m, 'failing_since', ARGV[7])
    redis.call('HDEL', m, 'flushing')
    redis.call('ZADD', K_RETRY, now + tonumber(ARGV[6]), cid)
  elseif action == 'dead' then
    local v = redis.call('HMGET', m, 'count', 'bytes')
    if dl_on and redis.call('EXISTS', K_CHUNK(cid)) == 1 then
      redis.call('RENAME', K_CHUNK(cid), K_DEADDATA(ARGV[8]))
      forget(cid, true)
      full = full + add_dead(ARGV[8], ARGV[9], attempts, num(v[1]), num(v[2]), now, dl_max)
    else
      disabled = disabled + num(v[1])
      forget(cid)
    end
  end
end
return {total(), exists and 1 or 0, full, disabled}
`,
);

/**
 * overflow_action drop_oldest_chunk: drops the oldest sealed chunks not being flushed (a
 * 'flushing' mark older than ARGV[3] ms is stale: its worker died) until ARGV[1] more bytes
 * fit under ARGV[2]. Returns [total bytes, records dropped, dropped ids…].
 */
export const DROP_OLDEST = new Script(
  'drop_oldest',
  `
local need, limit, stale = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local out = {0, 0}
local offset = 0
while total() + need > limit do
  local ids = redis.call('ZRANGE', K_SEALED, offset, offset + 63)
  if #ids == 0 then break end
  for _, cid in ipairs(ids) do
    if total() + need <= limit then break end
    local flushing = tonumber(redis.call('HGET', K_META(cid), 'flushing'))
    if flushing and now - flushing <= stale then
      offset = offset + 1
    else
      local records = forget(cid)
      if records then
        out[2] = out[2] + records
        out[#out + 1] = cid
      else
        offset = offset + 1
      end
    end
  end
end
out[1] = total()
return out
`,
);

/** [bytes, stage_count, stage_bytes, queue_count, queue_bytes, dl_chunks, dl_records, ms to next retry or -1]. */
export const STATS = new Script(
  'stats',
  `
local v = redis.call('HMGET', K_STATS, 'bytes', 'stage_count', 'stage_bytes', 'queue_count', 'queue_bytes',
  'dl_chunks', 'dl_records')
local out = {}
for i = 1, 7 do out[i] = num(v[i]) end
local nxt = redis.call('ZRANGE', K_RETRY, 0, 0, 'WITHSCORES')
out[8] = nxt[2] and math.max(0, tonumber(nxt[2]) - now_ms()) or -1
return out
`,
);

/** How many of the chunk ids in ARGV are still sealed and not waiting for a retry. */
export const PENDING = new Script(
  'pending',
  `
local n = 0
for i = 1, #ARGV do
  if redis.call('ZSCORE', K_SEALED, ARGV[i]) and not redis.call('ZSCORE', K_RETRY, ARGV[i]) then n = n + 1 end
end
return n
`,
);

/** A dead-letter chunk (ARGV[1]) back into the queue as a new sealed chunk (ARGV[2]). Returns 1, or 0 when unknown. */
export const DEAD_REPLAY = new Script(
  'dead_replay',
  `
local did, cid = ARGV[1], ARGV[2]
local v = redis.call('HMGET', K_DEADMETA(did), 'count', 'bytes')
if not v[1] or redis.call('EXISTS', K_DEADDATA(did)) == 0 then return 0 end
local now = now_ms()
redis.call('RENAME', K_DEADDATA(did), K_CHUNK(cid))
drop_dead(did)
redis.call('HSET', K_META(cid), 'count', v[1], 'bytes', v[2], 'created', now, 'sealed', now, 'retries', 0,
  'replica', '')
redis.call('ZADD', K_SEALED, now, cid)
stat('queue_count', 1); stat('queue_bytes', num(v[2])); stat('bytes', num(v[2]))
return 1
`,
);

/** Removes one dead-letter chunk (ARGV[1]) or all (ARGV[1] = ''). Returns how many. */
export const DEAD_PURGE = new Script(
  'dead_purge',
  `
if ARGV[1] ~= '' then return (drop_dead(ARGV[1])) end
local n = 0
repeat
  local ids = redis.call('ZRANGE', K_DEAD, 0, 99)
  for _, did in ipairs(ids) do n = n + (drop_dead(did)) end
until #ids == 0
return n
`,
);
