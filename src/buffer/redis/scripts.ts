import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { LUA_KEYS } from './keys.ts';

export type RedisClient = Redis | Cluster;
type Arg = string | number | Buffer;

/**
 * The buffer's state changes, each one Lua script so it is atomic: data and the totals in
 * `stats` never drift apart, whatever crashes between two scripts. Every script takes the
 * output's hash tag as KEYS[1] (and `stats` as KEYS[2]: OutputKeys.script), and reads the clock with Redis TIME, so
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

-- A chunk joins the sealed ones, ready to be leased, behind every chunk sealed before it.
local function enqueue(cid, now)
  -- Seeded with the clock: chunks an older Estuary left, scored by their seal time, stay first.
  redis.call('HSETNX', K_STATS, 'seal_seq', now)
  local seq = redis.call('HINCRBY', K_STATS, 'seal_seq', 1)
  redis.call('HSET', K_META(cid), 'sealed', now, 'seq', seq)
  redis.call('ZADD', K_SEALED, seq, cid)
  redis.call('ZADD', K_READY, seq, cid)
end

-- An open chunk becomes sealed: immutable, ready to be written.
local function seal(cid, now)
  local m = K_META(cid)
  local v = redis.call('HMGET', m, 'bytes', 'replica', 'sealed')
  local owner = v[2]
  if owner and redis.call('HGET', K_OPEN, owner) == cid then redis.call('HDEL', K_OPEN, owner) end
  if not owner or v[3] then return false end
  local bytes = num(v[1])
  enqueue(cid, now)
  stat('stage_count', -1); stat('stage_bytes', -bytes)
  stat('queue_count', 1); stat('queue_bytes', bytes)
  return true
end

-- A sealed chunk back among the ready ones, in its place (its seal sequence).
local function requeue(cid)
  local seq = redis.call('ZSCORE', K_SEALED, cid)
  if seq then redis.call('ZADD', K_READY, seq, cid) end
end

-- A sealed chunk leaves the buffer (delivered, dropped or dead-lettered). Returns its
-- record count, or false when it was already gone.
local function forget(cid, keep_data)
  redis.call('ZREM', K_SEALED, cid)
  redis.call('ZREM', K_READY, cid)
  redis.call('ZREM', K_RETRY, cid)
  redis.call('ZREM', K_LEASED, cid)
  local m = K_META(cid)
  local v = redis.call('HMGET', m, 'count', 'bytes')
  if not v[1] then return false end
  local bytes = num(v[2])
  redis.call('DEL', m)
  if not keep_data then redis.call('DEL', K_CHUNK(cid)) end
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
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/**
 * Appends a frame to the replica's open chunk, opening one (with the candidate id) when
 * there is none; seals a chunk that the frame would overflow, and one the frame fills.
 * ARGV: replica, candidate id, frame, count, bytes, chunk_limit_size, chunk_limit_records, lease ms,
 * deadline (Redis clock ms; 0: none).
 * Returns [total bytes, opened chunk id or '', sealed chunk ids…], or [-1] and nothing
 * changed when it runs after its deadline: the client has given up on it by then (command
 * timeout, refused, no ack), so a frozen Redis that runs it later does not store a batch
 * the sender re-sends.
 */
export const STAGE = new Script(
  'stage',
  `
local replica, candidate, frame = ARGV[1], ARGV[2], ARGV[3]
local count, bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local limit_bytes, limit_records, lease = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local deadline = tonumber(ARGV[9]) or 0
local now = now_ms()
if deadline > 0 and now > deadline then return {-1} end
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
 * The oldest chunk that may be written now, leased to ARGV[1] (a token per lease) of replica
 * ARGV[2] for ARGV[3] ms. First, chunks whose lease expired (their writer died or hung) and
 * chunks whose retry time came are made ready again, in their place. ARGV[4] = '1' (ordered):
 * only the oldest chunk not being written may be leased; when it waits on its retry time,
 * none is. A chunk whose write timed out in this replica is left to others for a while
 * (`avoid`): its connection may be the one that hangs.
 * Returns [chunk id, retries, failing_since or ''], or ['', ms until one may be ready or -1]. The
 * frames are read with a plain LRANGE after it: copied through Lua, a chunk of megabytes
 * holds Redis (and every sender's stage behind it) for tens of milliseconds.
 */
export const LEASE = new Script(
  'lease',
  `
local token, replica, lease, ordered = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local now = now_ms()
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', K_LEASED, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', K_LEASED, cid)
  redis.call('HDEL', K_META(cid), 'owner')
  requeue(cid)
end
for _, cid in ipairs(redis.call('ZRANGEBYSCORE', K_RETRY, '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', K_RETRY, cid)
  requeue(cid)
end
-- 0 when this replica may take the chunk, else how long until it may (only while another
-- replica is alive to take it).
local alone = true
for _, other in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, now, '+inf', 'LIMIT', 0, 2)) do
  if other ~= replica then alone = false end
end
local function blocked(cid)
  if alone then return 0 end
  local v = redis.call('HMGET', K_META(cid), 'avoid', 'avoid_until')
  if v[1] == replica and num(v[2]) > now then return num(v[2]) - now end
  return 0
end
local pick, wait = false, -1
if ordered then
  local offset, looking = 0, true
  while looking do
    local ids = redis.call('ZRANGE', K_SEALED, offset, offset + 15)
    if #ids == 0 then break end
    for _, cid in ipairs(ids) do
      if not redis.call('ZSCORE', K_LEASED, cid) then
        looking = false
        local due = redis.call('ZSCORE', K_RETRY, cid)
        if due then
          wait = math.max(0, tonumber(due) - now)
        else
          wait = blocked(cid)
          if wait == 0 then pick = cid end
        end
        break
      end
    end
    offset = offset + #ids
  end
else
  local offset = 0
  repeat
    local ids = redis.call('ZRANGE', K_READY, offset, offset + 15)
    for _, cid in ipairs(ids) do
      local w = blocked(cid)
      if w == 0 then pick = cid; break end
      if wait < 0 or w < wait then wait = w end
    end
    offset = offset + #ids
  until pick or #ids < 16
  if not pick then
    local nxt = redis.call('ZRANGE', K_RETRY, 0, 0, 'WITHSCORES')
    if nxt[2] then
      local w = math.max(0, tonumber(nxt[2]) - now)
      if wait < 0 or w < wait then wait = w end
    end
  end
end
if not pick then return {'', wait} end
if redis.call('HEXISTS', K_META(pick), 'count') == 0 then
  -- Its data is gone (a bug, or keys removed by hand): forget it, and look again at once.
  forget(pick)
  return {'', 0}
end
redis.call('ZREM', K_READY, pick)
redis.call('ZADD', K_LEASED, now + lease, pick)
redis.call('HSET', K_META(pick), 'owner', token)
local v = redis.call('HMGET', K_META(pick), 'retries', 'failing_since')
return {pick, v[1] or '0', v[2] or ''}
`,
);

/** Extends lease ARGV[2] on chunk ARGV[1] by ARGV[3] ms. Returns 1, or 0 when the lease was lost. */
export const RENEW = new Script(
  'renew',
  `
if redis.call('HGET', K_META(ARGV[1]), 'owner') ~= ARGV[2] then return 0 end
redis.call('ZADD', K_LEASED, now_ms() + tonumber(ARGV[3]), ARGV[1])
return 1
`,
);

/**
 * Sealed chunks in none of ready / retry / leased (left by an older Estuary, whose queue
 * was BullMQ's) become ready, in their place; at once when every chunk has its place.
 * ARGV: offset, page size.
 * Returns [next offset or -1, adopted ids…].
 */
export const ADOPT = new Script(
  'adopt',
  `
local offset, page = tonumber(ARGV[1]), tonumber(ARGV[2])
local placed = redis.call('ZCARD', K_READY) + redis.call('ZCARD', K_RETRY) + redis.call('ZCARD', K_LEASED)
if offset == 0 and placed >= redis.call('ZCARD', K_SEALED) then return {-1} end
local ids = redis.call('ZRANGE', K_SEALED, offset, offset + page - 1)
local out = {#ids < page and -1 or offset + page}
local gone = 0
for _, cid in ipairs(ids) do
  if redis.call('EXISTS', K_META(cid)) == 0 then
    redis.call('ZREM', K_SEALED, cid)
    redis.call('ZREM', K_READY, cid)
    redis.call('DEL', K_CHUNK(cid))
    gone = gone + 1
  elseif not (redis.call('ZSCORE', K_READY, cid) or redis.call('ZSCORE', K_RETRY, cid)
      or redis.call('ZSCORE', K_LEASED, cid)) then
    requeue(cid)
    out[#out + 1] = cid
  end
end
if out[1] > 0 then out[1] = out[1] - gone end
return out
`,
);

/**
 * What a flush decided, in one step: rejected entries to the dead-letter queue, then the
 * chunk `done` (forget it), `retry` (rewritten to the entries left, if any; ready again
 * after ARGV[6] ms) or `dead` (move it to the dead-letter queue). Only the holder of the
 * lease (ARGV[14]) retries or dead-letters; a chunk delivered is forgotten whoever held it.
 * With dead_letter off, dead entries are dropped.
 * ARGV: chunk id, action, attempts, dead_letter on (1/0), dead_letter max_size,
 *       retry delay ms, failing_since, dead id, reason,
 *       rewrite (1/0), frames, count, bytes,
 *       lease token, counted (1/0), avoiding replica or '', avoid ms,
 *       then per rejected group: dead id, reason, frames, count, bytes.
 * Returns [total bytes, lease still held (1/0), records dropped as dead_letter_full,
 *          records dropped as dead_letter_disabled, records of the chunk dead-lettered,
 *          rejected groups written (1/0)].
 */
export const SETTLE = new Script(
  'settle',
  `
local cid, action, attempts = ARGV[1], ARGV[2], ARGV[3]
local dl_on, dl_max = ARGV[4] == '1', tonumber(ARGV[5])
local now = now_ms()
local m = K_META(cid)
local mine = redis.call('HGET', m, 'owner') == ARGV[14]
local full, disabled, dead_records = 0, 0, 0
-- Rejections count once: not when another process holds the chunk and will answer for it.
local answer = mine or (action == 'done' and redis.call('EXISTS', m) == 1)
for i = 18, answer and #ARGV or 0, 5 do
  local count = tonumber(ARGV[i + 3])
  if dl_on then
    redis.call('RPUSH', K_DEADDATA(ARGV[i]), ARGV[i + 2])
    full = full + add_dead(ARGV[i], ARGV[i + 1], attempts, count, tonumber(ARGV[i + 4]), now, dl_max)
  else
    disabled = disabled + count
  end
end
if action == 'done' then
  forget(cid)
elseif mine then
  redis.call('ZREM', K_LEASED, cid)
  redis.call('HDEL', m, 'owner')
  if ARGV[10] == '1' then
    local old = num(redis.call('HGET', m, 'bytes'))
    local new = tonumber(ARGV[13])
    redis.call('DEL', K_CHUNK(cid))
    redis.call('RPUSH', K_CHUNK(cid), ARGV[11])
    redis.call('HSET', m, 'count', ARGV[12], 'bytes', new)
    stat('queue_bytes', new - old); stat('bytes', new - old)
  end
  if action == 'retry' then
    local delay = tonumber(ARGV[6])
    if ARGV[15] == '1' then
      redis.call('HINCRBY', m, 'retries', 1)
      redis.call('HSETNX', m, 'failing_since', ARGV[7])
    end
    if ARGV[16] ~= '' then
      redis.call('HSET', m, 'avoid', ARGV[16], 'avoid_until', now + delay + tonumber(ARGV[17]))
    end
    if delay > 0 then redis.call('ZADD', K_RETRY, now + delay, cid) else requeue(cid) end
  elseif action == 'dead' then
    local v = redis.call('HMGET', m, 'count', 'bytes')
    if dl_on and redis.call('EXISTS', K_CHUNK(cid)) == 1 then
      redis.call('RENAME', K_CHUNK(cid), K_DEADDATA(ARGV[8]))
      forget(cid, true)
      full = full + add_dead(ARGV[8], ARGV[9], attempts, num(v[1]), num(v[2]), now, dl_max)
      dead_records = num(v[1])
    else
      disabled = disabled + num(v[1])
      forget(cid)
    end
  end
end
return {total(), mine and 1 or 0, full, disabled, dead_records, answer and 1 or 0}
`,
);

/**
 * Entries refused before they were buffered (a filter's emit_invalid_record_to_error) into the
 * dead-letter queue. ARGV: dead_letter max_size, then per group: dead id, reason, frames,
 * count, bytes. Returns the records dropped as dead_letter_full.
 */
export const DEAD_ADD = new Script(
  'dead_add',
  `
local now = now_ms()
local full = 0
for i = 2, #ARGV, 5 do
  redis.call('RPUSH', K_DEADDATA(ARGV[i]), ARGV[i + 2])
  full = full + add_dead(ARGV[i], ARGV[i + 1], 0, tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), now, tonumber(ARGV[1]))
end
return full
`,
);

/**
 * overflow_action drop_oldest_chunk: drops the oldest sealed chunks not being written until
 * ARGV[1] more bytes fit under ARGV[2]. Returns [total bytes, records dropped, dropped ids…].
 */
export const DROP_OLDEST = new Script(
  'drop_oldest',
  `
local need, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {0, 0}
local offset = 0
while total() + need > limit do
  local ids = redis.call('ZRANGE', K_SEALED, offset, offset + 63)
  if #ids == 0 then break end
  for _, cid in ipairs(ids) do
    if total() + need <= limit then break end
    local records = not redis.call('ZSCORE', K_LEASED, cid) and forget(cid)
    if records then
      out[2] = out[2] + records
      out[#out + 1] = cid
    else
      offset = offset + 1
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
redis.call('HSET', K_META(cid), 'count', v[1], 'bytes', v[2], 'created', now, 'retries', 0, 'replica', '')
enqueue(cid, now)
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
