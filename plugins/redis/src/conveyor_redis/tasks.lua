--[[
conveyor-redis: every change to a task's state, as one script with an operation name.

Call: EVALSHA sha 0 OP PREFIX NOW ARG...   (KEYS are not used for the per-task keys:
which task keys a call touches is only known inside the script, e.g. the ids
ZPOPMIN returns. All names are built here from PREFIX and data read from the
store; nothing is ever spliced into the script text.)

Key layout. P = the configured prefix plus ':' (default "conveyor:"); Q = a queue
name, percent-escaped (every byte outside A-Z a-z 0-9 _ . - ~ becomes %XX, so a
queue name can never forge another key or act as a SCAN glob); I = a task id (26
characters of 0-9 a-v, sortable by creation time); S = a status name (Pending,
Queued, Running, Done, Failed, Killed); W = a worker name, escaped like Q.

  P t:I            hash    one task, fields below
  P q:Q:ready      zset    tasks ready now. Score 0, member = PK .. SEQ .. I where
                           PK = 16 hex digits of (2^63 - 1 - priority) and SEQ = 16
                           hex digits from INCR P seq: lexical order (which ZPOPMIN
                           follows for equal scores) is higher priority first, then
                           FIFO. No float score, so no precision limit on either part.
  P q:Q:delayed    zset    tasks waiting for run_at. Score run_at (epoch seconds,
                           a double: sub-microsecond resolution today), member as above.
                           The claim operation promotes due ones into ready.
  P q:Q:wake       list    wake tokens for idle pollers blocked in BLPOP; at most 64;
                           emptied by a claim that finds nothing.
  P q:Q:all        zset    score 0, member I: every task of Q, oldest first.
  P q:Q:s:S        zset    score 0, member I: the tasks of Q in status S.
  P all            zset    score 0, member I: every task.
  P s:S            zset    score 0, member I: the tasks in status S, every queue.
  P inflight       zset    score = lease deadline, member I: tasks a worker holds.
  P w:W:held       set     ids worker W holds (heartbeats extend these leases).
  P seq            string  the FIFO counter.
  P queues         set     raw queue names.
  P workers        hash    raw worker name -> JSON description.
  P workers:seen   zset    raw worker name, score = last heartbeat.
  channel P fin:I          published when task I becomes Done or Killed.

Task hash fields: q queue name, qk = P .. 'q:' .. Q .. ':' (the queue's key stem),
s status, a attempt, x max_attempts, r run_at, p priority, pk priority key, m its
member in ready/delayed, d args (codec bytes), res result bytes, err last_error,
by lock_by, tok lease token, lu lease deadline, hk the holder's held-set key,
meta JSON bytes ('' = none), ltok the token of the attempt acked last (so an ack
retried after a dropped reply is recognised, not refused as stale).

Times are the caller's clock (ARGV NOW), never the server's: tests drive them.
]]

local op = ARGV[1]
local P = ARGV[2]
local now = tonumber(ARGV[3])
local NOW = ARGV[3]

local HELD = { Running = true, Queued = true }

local function tkey(id)
  return P .. 't:' .. id
end

local function new_member(pk, id)
  return pk .. string.format('%016x', redis.call('INCR', P .. 'seq')) .. id
end

local function index_move(id, old_qk, old, new_qk, new)
  if old then
    redis.call('ZREM', old_qk .. 's:' .. old, id)
    redis.call('ZREM', P .. 's:' .. old, id)
  end
  if new then
    redis.call('ZADD', new_qk .. 's:' .. new, 0, id)
    redis.call('ZADD', P .. 's:' .. new, 0, id)
  end
end

local function wake(qk, n)
  local key = qk .. 'wake'
  for _ = 1, math.min(n, 64) do
    redis.call('LPUSH', key, '1')
  end
  redis.call('LTRIM', key, 0, 63)
end

-- Put a ready-state task (Pending/Failed) in its queue: ready now, or delayed.
local function enqueue(key, qk, run_at, member)
  if tonumber(run_at) <= now then
    redis.call('ZADD', qk .. 'ready', 0, member)
  else
    redis.call('ZADD', qk .. 'delayed', run_at, member)
  end
  redis.call('HSET', key, 'm', member)
  wake(qk, 1)
end

local function unqueue(key, qk)
  local m = redis.call('HGET', key, 'm')
  if m and m ~= '' then
    redis.call('ZREM', qk .. 'ready', m)
    redis.call('ZREM', qk .. 'delayed', m)
  end
end

local function unhold(key, id)
  local hk = redis.call('HGET', key, 'hk')
  redis.call('ZREM', P .. 'inflight', id)
  if hk and hk ~= '' then
    redis.call('SREM', hk, id)
  end
  redis.call('HDEL', key, 'by', 'tok', 'lu', 'hk')
end

local function finish(id)
  redis.call('PUBLISH', P .. 'fin:' .. id, '1')
end

-- push: per task 9 values: id q qk run_at priority pk max_attempts args meta.
-- A task whose id exists already is skipped: a push retried after a lost reply
-- stores nothing twice.
if op == 'push' then
  local stored, woken, queues = 0, {}, {}
  for i = 4, #ARGV, 9 do
    local id, q, qk, r = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local key = tkey(id)
    if redis.call('EXISTS', key) == 0 then
      local m = new_member(ARGV[i + 5], id)
      redis.call('HSET', key, 'q', q, 'qk', qk, 's', 'Pending', 'a', 0, 'x', ARGV[i + 6],
        'r', r, 'p', ARGV[i + 4], 'pk', ARGV[i + 5], 'm', m, 'd', ARGV[i + 7], 'meta', ARGV[i + 8])
      if tonumber(r) <= now then
        redis.call('ZADD', qk .. 'ready', 0, m)
      else
        redis.call('ZADD', qk .. 'delayed', r, m)
      end
      redis.call('ZADD', qk .. 'all', 0, id)
      redis.call('ZADD', P .. 'all', 0, id)
      index_move(id, nil, nil, qk, 'Pending')
      woken[qk] = (woken[qk] or 0) + 1
      queues[q] = true
      stored = stored + 1
    end
  end
  for qk, n in pairs(woken) do
    wake(qk, n)
  end
  for q in pairs(queues) do
    redis.call('SADD', P .. 'queues', q)
  end
  return stored
end

-- claim: qk worker held_key lease_until token... (one token per task wanted).
-- Promotes due delayed tasks, then pops the best ready ones. Returns
-- {id, HGETALL, id, HGETALL, ...}, or when nothing is ready the next run_at
-- of a delayed task as a string ('' if none) after emptying the wake list.
if op == 'claim' then
  local qk, worker, hk, lu = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
  local want = #ARGV - 7
  local ready, delayed = qk .. 'ready', qk .. 'delayed'
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 1000)
  if #due > 0 then
    local args = {}
    for _, m in ipairs(due) do
      args[#args + 1] = 0
      args[#args + 1] = m
    end
    redis.call('ZADD', ready, unpack(args))
    redis.call('ZREM', delayed, unpack(due))
  end
  local out, used = {}, 0
  while used < want do
    local popped = redis.call('ZPOPMIN', ready, want - used)
    if #popped == 0 then
      break
    end
    for j = 1, #popped, 2 do
      local m = popped[j]
      local id = string.sub(m, 33)
      local key = tkey(id)
      local f = redis.call('HMGET', key, 's', 'a', 'x')
      if f[1] and tonumber(f[2]) >= tonumber(f[3]) then
        -- Cannot run again (its attempts were set by hand): give it up, not loop.
        redis.call('HSET', key, 's', 'Killed', 'err', 'no attempts left when claimed')
        index_move(id, qk, f[1], qk, 'Killed')
        finish(id)
      elseif f[1] then
        used = used + 1
        redis.call('HSET', key, 's', 'Running', 'a', tonumber(f[2]) + 1, 'by', worker,
          'tok', ARGV[7 + used], 'lu', lu, 'hk', hk)
        redis.call('HDEL', key, 'res')
        redis.call('ZADD', P .. 'inflight', lu, id)
        redis.call('SADD', hk, id)
        index_move(id, qk, f[1], qk, 'Running')
        out[#out + 1] = id
        out[#out + 1] = redis.call('HGETALL', key)
      end
    end
  end
  if used == 0 then
    redis.call('DEL', qk .. 'wake')
    local nd = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
    return nd[2] or ''
  end
  return out
end

-- Lease check shared by ack and reschedule. nil: the caller holds the lease, go on.
-- Otherwise the reply to return: 'ok' when this is the client resending a write
-- that already landed (its token is the last one applied), else 'stale'.
local function refuse(f, token, resent)
  if HELD[f.s] and f.tok == token then
    return nil
  end
  if resent == '1' and f.ltok == token then
    return { 'ok', f.s }
  end
  return { 'stale', f.s or '', f.by or '' }
end

local function read(key)
  local v = redis.call('HMGET', key, 's', 'tok', 'qk', 'a', 'x', 'pk', 'ltok', 'by', 'm', 'r')
  return { s = v[1], tok = v[2], qk = v[3], a = tonumber(v[4]), x = tonumber(v[5]), pk = v[6],
    ltok = v[7], by = v[8], m = v[9], r = v[10] }
end

-- ack: id token kind value run_at has_value resent. kind: done | retry | kill | release.
-- resent = '1' when the client sends it again after losing the reply: then an
-- ack already applied under this very token reports success instead of stale.
if op == 'ack' then
  local id, token, kind, value, run_at = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
  local key = tkey(id)
  local f = read(key)
  if not f.s then
    return { 'gone' }
  end
  local no = refuse(f, token, ARGV[10])
  if no then
    return no
  end
  unhold(key, id)
  redis.call('HSET', key, 'ltok', token)
  local new
  if kind == 'done' then
    new = 'Done'
    if ARGV[9] == '1' then
      redis.call('HSET', key, 's', new, 'res', value)
    else
      redis.call('HSET', key, 's', new)
      redis.call('HDEL', key, 'res')
    end
  elseif kind == 'retry' and f.a < f.x then
    new = 'Failed'
    redis.call('HSET', key, 's', new, 'err', value, 'r', run_at)
    enqueue(key, f.qk, run_at, new_member(f.pk, id))
  elseif kind == 'retry' or kind == 'kill' then
    new = 'Killed'
    redis.call('HSET', key, 's', new, 'err', value)
  else
    new = 'Pending'
    redis.call('HSET', key, 's', new, 'a', math.max(0, f.a - 1))
    -- Back to the place it was claimed from: a released task keeps its turn.
    enqueue(key, f.qk, f.r, f.m)
  end
  index_move(id, f.qk, f.s, f.qk, new)
  if new == 'Done' or new == 'Killed' then
    finish(id)
  end
  return { 'ok', new }
end

-- heartbeat: worker held_key lease_until. Extends the leases the worker still holds.
if op == 'heartbeat' then
  local worker, hk, lu = ARGV[4], ARGV[5], ARGV[6]
  local kept = 0
  for _, id in ipairs(redis.call('SMEMBERS', hk)) do
    local key = tkey(id)
    local f = redis.call('HMGET', key, 'by', 's')
    if f[1] == worker and HELD[f[2]] then
      redis.call('HSET', key, 'lu', lu)
      redis.call('ZADD', P .. 'inflight', lu, id)
      kept = kept + 1
    else
      redis.call('SREM', hk, id)
    end
  end
  redis.call('ZADD', P .. 'workers:seen', now, worker)
  return kept
end

-- abandon: limit. Tasks whose lease deadline passed go back (attempt stays
-- counted), or to Killed at max_attempts. Returns how many were touched.
if op == 'abandon' then
  local ids = redis.call('ZRANGEBYSCORE', P .. 'inflight', '-inf', now, 'LIMIT', 0, ARGV[4])
  for _, id in ipairs(ids) do
    local key = tkey(id)
    local f = read(key)
    unhold(key, id)
    if f.s and HELD[f.s] then
      local why = string.format("worker '%s' stopped renewing its lease (attempt %d)",
        f.by or '?', f.a)
      local new
      if f.a >= f.x then
        new = 'Killed'
        redis.call('HSET', key, 's', new, 'err', why)
        finish(id)
      else
        new = 'Pending'
        redis.call('HSET', key, 's', new, 'err', why)
        enqueue(key, f.qk, f.r, f.m)
      end
      index_move(id, f.qk, f.s, f.qk, new)
    end
  end
  return #ids
end

-- reschedule: id token run_at resent ('' token = an operator's action, no lease check).
if op == 'reschedule' then
  local id, token, run_at = ARGV[4], ARGV[5], ARGV[6]
  local key = tkey(id)
  local f = read(key)
  if not f.s then
    return { 'notfound' }
  end
  if token ~= '' then
    local no = refuse(f, token, ARGV[7])
    if no then
      return no
    end
    redis.call('HSET', key, 'ltok', token)
  end
  if f.s == 'Done' then
    return { 'transition', f.s }
  end
  unqueue(key, f.qk)
  unhold(key, id)
  redis.call('HSET', key, 's', 'Pending', 'r', run_at)
  enqueue(key, f.qk, run_at, new_member(f.pk, id))
  if f.s ~= 'Pending' then
    index_move(id, f.qk, f.s, f.qk, 'Pending')
  end
  return { 'ok', 'Pending' }
end

-- resume: id. Failed, Killed or held tasks become Pending and ready now.
if op == 'resume' then
  local id = ARGV[4]
  local key = tkey(id)
  local f = read(key)
  if not (f.s == 'Failed' or f.s == 'Killed' or HELD[f.s]) then
    return 0
  end
  unqueue(key, f.qk)
  unhold(key, id)
  local attempt = f.a
  if f.s == 'Killed' then
    attempt = 0
  end
  redis.call('HSET', key, 's', 'Pending', 'a', attempt, 'r', NOW)
  enqueue(key, f.qk, NOW, new_member(f.pk, id))
  index_move(id, f.qk, f.s, f.qk, 'Pending')
  return 1
end

-- update: id expected_status then name/value pairs of the new fields. Fields
-- absent from the pairs are deleted (res, err, by, tok, lu, hk). Status moves
-- between the queue structures accordingly.
if op == 'update' then
  local id, expected = ARGV[4], ARGV[5]
  local key = tkey(id)
  local f = read(key)
  if not f.s then
    return { 'notfound' }
  end
  if f.s ~= expected then
    return { 'conflict', f.s }
  end
  local new = {}
  for i = 6, #ARGV, 2 do
    new[ARGV[i]] = ARGV[i + 1]
  end
  unqueue(key, f.qk)
  unhold(key, id)
  redis.call('HDEL', key, 'res', 'err')
  local pairs_ = {}
  for i = 6, #ARGV do
    pairs_[#pairs_ + 1] = ARGV[i]
  end
  redis.call('HSET', key, unpack(pairs_))
  if new.qk ~= f.qk then
    redis.call('ZREM', f.qk .. 'all', id)
    redis.call('ZADD', new.qk .. 'all', 0, id)
    redis.call('SADD', P .. 'queues', new.q)
  end
  if new.s == 'Pending' or new.s == 'Failed' then
    enqueue(key, new.qk, new.r, new_member(new.pk, id))
  elseif HELD[new.s] and new.tok then
    redis.call('ZADD', P .. 'inflight', new.lu, id)
    redis.call('SADD', new.hk, id)
  elseif new.s == 'Done' or new.s == 'Killed' then
    finish(id)
  end
  index_move(id, f.qk, f.s, new.qk, new.s)
  return { 'ok', new.s }
end

-- vacuum: qk status limit. Deletes up to limit finished tasks; returns how many.
if op == 'vacuum' then
  local qk, status = ARGV[4], ARGV[5]
  local ids = redis.call('ZRANGE', qk .. 's:' .. status, 0, tonumber(ARGV[6]) - 1)
  for _, id in ipairs(ids) do
    redis.call('DEL', tkey(id))
    redis.call('ZREM', qk .. 'all', id)
    redis.call('ZREM', P .. 'all', id)
    index_move(id, qk, status, nil, nil)
  end
  return #ids
end

return redis.error_reply('conveyor-redis: unknown operation ' .. tostring(op))
