--[[
conveyor-redis: every change to a task's state, as one script with an operation name.

Call: EVALSHA sha 0 OP PREFIX NOW RESENT ARG...   (KEYS are not used for the per-task keys:
which task keys a call touches is only known inside the script, e.g. the ids
LPOP returns. All names are built here from PREFIX and data read from the
store; nothing is ever spliced into the script text.)

Key layout. P = the configured prefix plus ':' (default "conveyor:"); Q = a queue
name, percent-escaped (every byte outside A-Z a-z 0-9 _ . - ~ becomes %XX, so a
queue name can never forge another key or act as a SCAN glob); I = a task id (26
characters of 0-9 a-v, sortable by creation time); K = a priority key, 16 hex
digits of (2^63 - 1 - priority), so lexical order is higher priority first over
the whole signed 64-bit range (no float score, no precision limit); S = a status
name (Pending, Queued, Running, Done, Failed, Killed); W = a worker name, escaped like Q.

  P t:I            hash    one task, fields below
  P q:Q:due:K      zset    ids of priority K ready now, score run_at (integer epoch
                           microseconds), ties by id (ids sort by creation): the
                           settled order within a priority, earliest run_at first, then
                           lowest id, whether a task was pushed, came due, was released
                           or resumed. A claim takes the lowest (ZRANGE, ZREM). (Earlier
                           versions kept a list, P q:Q:ready:K, which this one ignores:
                           drain a prefix with the version that filled it.)
  P q:Q:prio       zset    score 0, member K: the priorities whose due set may be
                           non-empty (never missing one that is not). A claim reads
                           the lexically first and drops it once its list is empty.
  P q:Q:delayed    zset    tasks waiting for run_at. Score run_at (integer epoch
                           microseconds, exact in a double until the year 2255),
                           member K .. I. A claim moves the due ones to their lists.
  P q:Q:parked     list    registrations of idle workers blocked on their hand list,
                           oldest first, each "token lease_until deadline W worker"
                           (deadline: when its wait ends, integer epoch microseconds;
                           worker raw, last, as it may hold spaces). A push of one due
                           task into a queue with nothing ready pops one and claims the
                           task for that worker under its token (see hand-off below); one
                           whose deadline passed is a wait already over (a dead worker's):
                           dropped, never handed anything.
  P q:Q:hand:W     list    claimed records handed to worker W by a push, each "token
                           record" (record as a claim returns it); W's BLPOP takes it.
                           What W did not take is given back (released, keeping its
                           place) when W parks or unparks; left by a worker that died,
                           the lease sweep brings the task back. Also '-', put there by a
                           park that claimed at once, to end the BLPOP sent behind it.
  P q:Q:wake       list    wake tokens for idle pollers blocked in BLPOP. A task made
                           ready adds one while its list is at most 16 long (past
                           that, every poller that was idle has had a token); past
                           64 tokens it is trimmed; a claim that finds nothing empties it.
  P q:Q:s:S        zset    score 0, member I: the tasks of Q in status S. The only
                           status index: listings across statuses or queues merge
                           these (ids sort by creation time).
  P inflight       zset    score = lease deadline, member I: tasks a worker holds.
  P w:W:held       set     ids worker W holds (heartbeats extend these leases).
  P queues         set     raw queue names (added when a queue's list or delayed set
                           gains its first task, so always holding every queue with work).
  P workers        hash    raw worker name -> JSON description.
  P workers:seen   zset    raw worker name, score = last heartbeat.
  P malformed      hash    task id -> why its record was set aside: a task hash a claim
                           (or the lease sweep) found unusable (a field that is not what
                           the scripts write, e.g. max_attempts 'abc'). Its hash P t:I is
                           kept as found, out of every ready list, status index and the
                           inflight set, so the rest of the queue keeps flowing and nothing
                           is half-changed. An operator inspects it (HGETALL P t:I), fixes
                           the field and runs resume on the id, which checks it again and
                           makes it Pending; or deletes both.
  channel P fin:I          published when task I becomes Done or Killed.

Task hash fields: q queue name, qk = P .. 'q:' .. Q .. ':' (the queue's key stem),
s status, a attempt (absent = 0), x max_attempts, r run_at, pk priority key (the
priority is read back from it), d args (codec bytes), meta JSON bytes (absent =
none), n name (absent = none), res result bytes, err last_error, by lock_by, tok lease token, lu lease
deadline, hk the holder's held-set key, ltok the token of the attempt acked last
(so an ack retried after a dropped reply is recognised, not refused as stale).

Times are the caller's clock (ARGV NOW), never the server's: tests drive them.
Operator actions on a waiting task (update, reschedule, resume) take it out of its
due set with ZREM.
]]

local op = ARGV[1]
local P = ARGV[2]
local now = tonumber(ARGV[3])
local NOW = ARGV[3]
-- The client sends a call again after losing its reply; then it may have been
-- applied already, and the lease checks recognise their own write.
local resent = ARGV[4] == '1'

local function tkey(id)
  return P .. 't:' .. id
end

local function wake(qk)
  local key = qk .. 'wake'
  if redis.call('LPUSH', key, '1') > 64 then
    redis.call('LTRIM', key, 0, 63)
  end
end

-- Make a waiting task claimable: delayed until run_at, or in its priority's due set
-- at its run_at (a released or abandoned task, run_at unchanged, keeps its turn).
local function enqueue(id, q, qk, pk, run_at)
  if tonumber(run_at) > now then
    if redis.call('ZADD', qk .. 'delayed', run_at, pk .. id) == 1 then
      redis.call('SADD', P .. 'queues', q)
    end
    return
  end
  -- Scored by run_at, ties by id: the settled order, wherever the task comes from.
  local key = qk .. 'due:' .. pk
  redis.call('ZADD', key, run_at, id)
  local n = redis.call('ZCARD', key)
  if n == 1 then
    redis.call('ZADD', qk .. 'prio', '0', pk)
    redis.call('SADD', P .. 'queues', q)
  end
  if n <= 16 then
    wake(qk)
  end
end

-- The hot operations come first, each right after the helpers it needs: every call
-- runs the script's top level down to its operation, defining what it passes.
-- Store the task of ARGV[i..i+8] (see push) as Pending; 0 when its id exists already.
-- new_key: its key, given when the caller has just seen it does not exist.
local function store(i, new_key)
  local id, q, qk, r, pk = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = new_key or tkey(id)
  if not new_key and redis.call('EXISTS', key) == 1 then
    return 0
  end
  local meta, name = ARGV[i + 7], ARGV[i + 8]
  redis.call('HSET', key, 'q', q, 'qk', qk, 's', 'Pending', 'x', ARGV[i + 5], 'r', r,
    'pk', pk, 'd', ARGV[i + 6])
  if meta ~= '' then
    redis.call('HSET', key, 'meta', meta)
  end
  if name ~= '' then
    redis.call('HSET', key, 'n', name)
  end
  redis.call('ZADD', qk .. 's:Pending', '0', id)
  enqueue(id, q, qk, pk, r)
  return 1
end

-- push: per task 9 values: id q qk run_at pk max_attempts args meta name ('' = none).
-- A task whose id exists already is skipped, so a push resent after a lost reply
-- (or of a Task already stored) stores nothing twice. Returns how many were stored.
-- One task due now, with a worker parked on its queue, goes on to the hand-off
-- further down, past the claim's helpers: a push that hands nothing off never
-- runs those. Looking costs it nothing: the resend guard's EXISTS asks about the
-- parked list too.
local reg
if op == 'push' then
  if #ARGV ~= 13 then
    local stored = 0
    for i = 5, #ARGV, 9 do
      stored = stored + store(i)
    end
    return stored
  end
  local key, parked = tkey(ARGV[5]), ARGV[7] .. 'parked'
  if redis.call('EXISTS', key, parked) == 0 then
    return store(5, key)
  end
  if redis.call('EXISTS', key) == 1 then
    return 0
  end
  if tonumber(ARGV[8]) <= now then
    reg = redis.call('LPOP', parked)
  end
  if not reg then
    return store(5, key)
  end
end

-- Functions rather than lookup tables: a table built on every call costs more.
local function HELD(s)
  return s == 'Running' or s == 'Queued'
end

local function READY(s)
  return s == 'Pending' or s == 'Failed'
end

local function index_move(id, old_qk, old, new_qk, new)
  if old then
    redis.call('ZREM', old_qk .. 's:' .. old, id)
  end
  if new then
    redis.call('ZADD', new_qk .. 's:' .. new, '0', id)
  end
end

-- Take a waiting task out of its list or the delayed set (scans the list).
local function unqueue(id, qk, pk)
  if redis.call('ZREM', qk .. 'delayed', pk .. id) == 0 then
    redis.call('ZREM', qk .. 'due:' .. pk, id)
  end
end

-- hk: the holder's held-set key, as read() returns it; ... more fields to delete.
local function unhold(key, id, hk, ...)
  redis.call('ZREM', P .. 'inflight', id)
  if hk then
    redis.call('SREM', hk, id)
  end
  redis.call('HDEL', key, 'by', 'tok', 'lu', 'hk', ...)
end

local function finish(id)
  redis.call('PUBLISH', P .. 'fin:' .. id, '1')
end

local function read(key)
  local v = redis.pcall('HMGET', key, 's', 'tok', 'q', 'qk', 'a', 'x', 'pk', 'ltok', 'by', 'r', 'hk')
  if v.err then
    return { wrongtype = true }
  end
  return { s = v[1], tok = v[2], q = v[3], qk = v[4], a = tonumber(v[5]) or 0,
    x = tonumber(v[6]), pk = v[7], ltok = v[8], by = v[9], r = v[10], hk = v[11], ra = v[5],
    rx = v[6] }
end

-- Record checks. Every script reads a task's fields before it changes anything, and
-- these say whether a record is one it can act on; a script never fails half-way
-- (Redis keeps the writes made before an error), it sets an unusable record aside.
local function STATUS(s)
  return s == 'Pending' or s == 'Queued' or s == 'Running' or s == 'Done' or s == 'Failed'
    or s == 'Killed'
end
-- Microseconds of 0001-01-01 and 9999-12-31: the datetimes the client can build.
local FIRST, LAST = -62135596800000000, 253402300799999999

local function show(v)
  if not v then
    return 'missing'
  end
  if #v > 40 then
    v = string.sub(v, 1, 40) .. '...'
  end
  return "'" .. v .. "'"
end

-- string.find rather than string.match in these checks: the same answer without
-- building the matched text as a new string.
local find = string.find

local function digits(v, signed)
  return v and find(v, signed and '^%-?%d+$' or '^%d+$') ~= nil and #v <= 19
end

-- Why the record of task id cannot be used (nil when it can): s a x r pk q qk meta,
-- raw strings as stored; want_qk the queue's key stem it was found under (or nil).
local function unusable(id, s, a, x, r, pk, q, qk, meta, want_qk)
  -- A missing field reads as false from HMGET.
  a, x, r, pk, q, qk = a or nil, x or nil, r or nil, pk or nil, q or nil, qk or nil
  meta = meta or nil
  if #id ~= 26 or not find(id, '^[0-9a-v]+$') then
    return 'its id is not 26 characters of 0-9 a-v'
  end
  if not STATUS(s) then
    return 'field s (status) is ' .. show(s) .. ', not a status name'
  end
  if a ~= nil and not digits(a) then
    return 'field a (attempt) is ' .. show(a) .. ', not a whole number'
  end
  if not digits(x) or tonumber(x) < 1 then
    return 'field x (max_attempts) is ' .. show(x) .. ', not a whole number of at least 1'
  end
  local rn = digits(r, true) and tonumber(r)
  if not rn or rn < FIRST or rn > LAST then
    return 'field r (run_at) is ' .. show(r) .. ', not integer microseconds since 1970'
  end
  if pk == nil or #pk ~= 16 or not find(pk, '^[0-9a-f]+$') then
    return 'field pk (priority key) is ' .. show(pk) .. ', not 16 hex digits'
  end
  if q == nil or q == '' then
    return 'field q (queue) is ' .. show(q)
  end
  if qk == nil or (want_qk and qk ~= want_qk) then
    return 'field qk (queue key) is ' .. show(qk) .. ', not ' .. show(want_qk)
  end
  if meta ~= nil and meta ~= '' then
    local ok, v = pcall(cjson.decode, meta)
    if not ok or type(v) ~= 'table' or string.sub(meta, 1, 1) ~= '{' then
      return 'field meta is ' .. show(meta) .. ', not a JSON object'
    end
  end
  return nil
end

-- Lease check shared by ack and reschedule. nil: the caller holds the lease, go on.
-- Otherwise the reply to return: 'ok' when this is the client resending a write
-- that already landed (its token is the last one applied), else 'stale'.
local function refuse(f, token, resent_)
  if HELD(f.s) and f.tok == token then
    return nil
  end
  if resent_ and f.ltok == token then
    return { 'ok', f.s }
  end
  return { 'stale', f.s or '', f.by or '' }
end

-- ack: id token kind value run_at has_value. kind: done | retry | kill | release.
-- Returns the new status, or a refusal as a list ({'stale', ...}, {'gone'}).
-- Resent, an ack already applied under this very token reports success, not stale.
-- Ahead of the claim's helpers, which an ack never needs: the top level runs
-- on every call, down to its operation.
local function ack(resent_, id, token, kind, value, run_at, has_value)
  local key = tkey(id)
  local f
  if kind == 'done' or kind == 'kill' then
    -- Only the fields a done or kill uses: each one read costs a scan of the hash.
    local v = redis.pcall('HMGET', key, 's', 'tok', 'ltok', 'by', 'qk', 'hk')
    f = v.err and {} or { s = v[1], tok = v[2], ltok = v[3], by = v[4], qk = v[5], hk = v[6] }
  else
    f = read(key)
  end
  if not f.s then
    return { 'gone' }
  end
  local no = refuse(f, token, resent_)
  if no then
    return no
  end
  -- The fields this outcome uses are checked (see unusable()): done and kill only
  -- move the task between sets named by qk, so a record broken elsewhere (checked
  -- by every claim, the sweep and resume) can still finish; retry and release
  -- enqueue it again, which needs the whole record.
  local why
  if kind == 'done' or kind == 'kill' then
    if not f.qk then
      why = 'field qk (queue key) is missing'
    end
  else
    why = unusable(id, f.s, f.ra, f.rx, f.r, f.pk, f.q, f.qk, nil, nil)
  end
  if why then
    return { 'malformed', why }
  end
  local new
  if kind == 'done' then
    new = 'Done'
    if has_value == '1' then
      unhold(key, id, f.hk)
      redis.call('HSET', key, 's', new, 'ltok', token, 'res', value)
    else
      unhold(key, id, f.hk, 'res')
      redis.call('HSET', key, 's', new, 'ltok', token)
    end
  elseif kind == 'retry' and f.a < f.x then
    new = 'Failed'
    unhold(key, id, f.hk)
    redis.call('HSET', key, 's', new, 'ltok', token, 'err', value, 'r', run_at)
    enqueue(id, f.q, f.qk, f.pk, run_at)
  elseif kind == 'retry' or kind == 'kill' then
    new = 'Killed'
    unhold(key, id, f.hk)
    redis.call('HSET', key, 's', new, 'ltok', token, 'err', value)
  else
    new = 'Pending'
    unhold(key, id, f.hk)
    redis.call('HSET', key, 's', new, 'ltok', token, 'a', math.max(0, f.a - 1))
    enqueue(id, f.q, f.qk, f.pk, f.r)
  end
  index_move(id, f.qk, f.s, f.qk, new)
  if new == 'Done' or new == 'Killed' then
    finish(id)
  end
  return new
end

if op == 'ack' then
  return ack(resent, ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
end

-- acks: then 7 values per ack: resent id token kind value run_at has_value. The acks
-- that queued up behind a batch in flight, as one call: the set-up above is paid
-- once. One reply per ack, in order: what ack returns, or the error that stopped
-- it (its writes so far kept, as for a call of its own; the next ones still run).
if op == 'acks' then
  local out = {}
  for i = 5, #ARGV, 7 do
    local ok, r = pcall(ack, ARGV[i] == '1', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
      ARGV[i + 5], ARGV[i + 6])
    if not ok then
      r = redis.error_reply(type(r) == 'table' and r.err or tostring(r))
    end
    out[#out + 1] = r
  end
  return out
end

-- Take task id out of the flow (every status index of the stems given, inflight,
-- its holder's set) and record why in P malformed. Its hash stays as it was.
local function set_aside(id, why, hk, ...)
  for _, stem in ipairs({ ... }) do
    for _, s in ipairs({ 'Pending', 'Queued', 'Running', 'Done', 'Failed', 'Killed' }) do
      redis.call('ZREM', stem .. 's:' .. s, id)
    end
  end
  redis.call('ZREM', P .. 'inflight', id)
  if hk then
    redis.pcall('SREM', hk, id) -- read from the record: may name a key of another type
  end
  redis.call('HSET', P .. 'malformed', id, why)
end


-- command key values[1..n]: the values passed in slices of 1,000 (an even number,
-- so score/member pairs stay whole), as unpack() is bounded by Lua's stack (a
-- claim of thousands of slots).
local function each(key, values, command)
  for i = 1, #values, 1000 do
    redis.call(command, key, unpack(values, i, math.min(#values, i + 999)))
  end
end

-- claim: qk worker held_key lease_until token... (one token per task wanted).
-- Moves due delayed tasks to their lists, then takes from the head of the best
-- priority's list. Returns one string per task claimed, in token order: a head
-- line "id attempt max_attempts run_at pk #args #meta #error #name" (attempt after
-- this claim; #error, #name -1 when there is none), then args, meta, error and
-- name back to back.
-- One string rather than a value per field because parsing each reply value
-- costs the client more than the server spends on the claim. The caller knows
-- the rest (worker, token, lease, queue). A record found unusable is set aside
-- (see P malformed) and reported among them as "!id why", taking no token.
-- When nothing is ready: the next run_at of a delayed task as a string ('' if
-- none), after emptying the wake list.
local function claim(qk, worker, hk, lu, first_token)
  local want = #ARGV - first_token + 1
  local delayed, prio = qk .. 'delayed', qk .. 'prio'
  -- Numbers go to redis.call as text: a Lua number is formatted as a float
  -- (printf's slow path), a cost per argument that adds up over a claim.
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', NOW, 'WITHSCORES', 'LIMIT', '0',
    '1000')
  if #due > 0 then
    local sets, members = {}, {}
    for k = 1, #due, 2 do
      local m = due[k]
      local pk = string.sub(m, 1, 16)
      local pairs_ = sets[pk]
      if not pairs_ then
        pairs_ = {}
        sets[pk] = pairs_
      end
      pairs_[#pairs_ + 1] = due[k + 1]
      pairs_[#pairs_ + 1] = string.sub(m, 17)
      members[#members + 1] = m
    end
    for pk, pairs_ in pairs(sets) do
      redis.call('ZADD', qk .. 'due:' .. pk, unpack(pairs_))
      redis.call('ZADD', prio, '0', pk)
    end
    redis.call('ZREM', delayed, unpack(members))
  end
  local out, used = {}, 0
  -- The set writes of every task claimed, made once per claim rather than once per
  -- task (each redis.call costs the server a few thousand instructions).
  local leases, held, from = {}, {}, {}
  while used < want do
    local top = redis.call('ZRANGE', prio, '0', '0')[1]
    if not top then
      break
    end
    local asked = want - used
    -- ZRANGE and ZREM rather than ZPOPMIN: the scores, which ZPOPMIN formats as
    -- doubles, are not needed.
    local set = qk .. 'due:' .. top
    local ids = redis.call('ZRANGE', set, '0', string.format('%d', asked - 1))
    if #ids < asked then
      redis.call('ZREM', prio, top)
    end
    if #ids > 0 then
      each(set, ids, 'ZREM')
    end
    for _, id in ipairs(ids) do
      local key = tkey(id)
      -- Every field checked before anything changes: see unusable().
      -- res too, to delete it only when there is one (an update can leave one on a
      -- waiting task): a read costs less than a call.
      local f = redis.pcall('HMGET', key, 's', 'a', 'x', 'r', 'pk', 'd', 'meta', 'err', 'q', 'qk',
        'n', 'res')
      local why
      if f.err then
        why = 'its key holds no hash'
        f = {}
      elseif f[1] then
        why = unusable(id, f[1], f[2], f[3], f[4], f[5], f[9], f[10], f[7], qk)
      end
      local attempt = tonumber(f[2]) or 0
      if why then
        set_aside(id, why, nil, qk)
        out[#out + 1] = '!' .. id .. ' ' .. why
      elseif not READY(f[1]) then
        -- A leftover entry (the task is held or finished already, or gone): dropped,
        -- so nothing runs twice.
      elseif attempt >= tonumber(f[3]) then
        -- Cannot run again (its attempts were set by hand): give it up, not loop.
        redis.call('HSET', key, 's', 'Killed', 'err', 'no attempts left when claimed')
        index_move(id, qk, f[1], qk, 'Killed')
        finish(id)
      else
        used = used + 1
        local a = string.format('%d', attempt + 1)
        redis.call('HSET', key, 's', 'Running', 'a', a, 'by', worker,
          'tok', ARGV[first_token + used - 1], 'lu', lu, 'hk', hk)
        if f[12] then
          redis.call('HDEL', key, 'res')
        end
        leases[#leases + 1] = lu
        leases[#leases + 1] = id
        held[#held + 1] = id
        local ids_ = from[f[1]]
        if not ids_ then
          ids_ = {}
          from[f[1]] = ids_
        end
        ids_[#ids_ + 1] = id
        local args, meta, err, name = f[6] or '', f[7] or '', f[8], f[11]
        -- '%d' for the numbers: concat would format each as a float.
        out[#out + 1] = string.format('%s %s %s %s %s %d %d %d %d\n', id, a, f[3], f[4], f[5],
          #args, #meta, err and #err or -1, name and #name or -1) .. args .. meta
          .. (err or '') .. (name or '')
      end
    end
  end
  if #held > 0 then
    each(P .. 'inflight', leases, 'ZADD')
    each(hk, held, 'SADD')
    local running = {}
    for old, ids_ in pairs(from) do
      each(qk .. 's:' .. old, ids_, 'ZREM')
      for _, id in ipairs(ids_) do
        running[#running + 1] = '0'
        running[#running + 1] = id
      end
    end
    each(qk .. 's:Running', running, 'ZADD')
  end
  if #out == 0 then
    redis.call('DEL', qk .. 'wake')
    local nd = redis.call('ZRANGE', delayed, '0', '0', 'WITHSCORES')
    return nd[2] or ''
  end
  return out
end

if op == 'claim' then
  return claim(ARGV[5], ARGV[6], ARGV[7], ARGV[8], 9)
end

-- The hand-off: the push above popped a registration (reg) for its one task, due now.
-- Into a queue with nothing ready or due (else the claim's order decides, and the
-- task is stored as any other, the registration put back), the task is claimed for
-- the registered worker as claim() would claim it (the same checks, fields, lease
-- and index writes, attempt 1) and its record, behind the registration's token,
-- pushed onto the worker's hand list, which its BLPOP is waiting on.
if op == 'push' then
  local id, q, qk, r, pk, x = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
  local args, meta, name = ARGV[11], ARGV[12], ARGV[13]
  local parked = qk .. 'parked'
  local key = tkey(id)
  local tok, lu, deadline, w, worker
  if redis.call('EXISTS', qk .. 'prio') == 0
    and #redis.call('ZRANGEBYSCORE', qk .. 'delayed', '-inf', NOW, 'LIMIT', '0', '1') == 0
    and not unusable(id, 'Pending', nil, x, r, pk, q, qk, meta, qk) then
    -- Bounded: a backlog of dead workers' registrations is dropped over several pushes.
    for _ = 1, 16 do
      tok, lu, deadline, w, worker = string.match(reg, '^(%S+) (%d+) (%-?%d+) (%S+) (.*)$')
      if tok and tonumber(deadline) >= now then
        break
      end
      tok = nil
      reg = redis.call('LPOP', parked)
      if not reg then
        break
      end
    end
  end
  if not tok then
    if reg then
      redis.call('LPUSH', parked, reg)
    end
    return store(5, key)
  end
  local hk = P .. 'w:' .. w .. ':held'
  local fields = { 'q', q, 'qk', qk, 's', 'Running', 'x', x, 'r', r, 'pk', pk, 'd', args,
    'a', '1', 'by', worker, 'tok', tok, 'lu', lu, 'hk', hk }
  if meta ~= '' then
    fields[#fields + 1] = 'meta'
    fields[#fields + 1] = meta
  end
  if name ~= '' then
    fields[#fields + 1] = 'n'
    fields[#fields + 1] = name
  end
  redis.call('HSET', key, unpack(fields))
  redis.call('ZADD', qk .. 's:Running', '0', id)
  redis.call('ZADD', P .. 'inflight', lu, id)
  redis.call('SADD', hk, id)
  redis.call('SADD', P .. 'queues', q)
  redis.call('RPUSH', qk .. 'hand:' .. w, string.format('%s %s 1 %s %s %s %d %d -1 %d\n', tok,
    id, x, r, pk, #args, #meta, name ~= '' and #name or -1) .. args .. meta .. name)
  return 1
end

-- Give back what pushes handed to hand ("token record" values) and its worker never
-- took: each task still held under that token is released as a release ack does
-- (attempt given back, back to its place in line). Then hand is emptied.
local function give_back(hand)
  for _, v in ipairs(redis.call('LRANGE', hand, '0', '15')) do
    local tok, id = string.match(v, '^(%S+) (%S+)')
    if id then
      local key = tkey(id)
      local f = read(key)
      if HELD(f.s) and f.tok == tok
        and not unusable(id, f.s, f.ra, f.rx, f.r, f.pk, f.q, f.qk, nil, nil) then
        unhold(key, id, f.hk)
        redis.call('HSET', key, 's', 'Pending', 'a', string.format('%d', math.max(0, f.a - 1)))
        enqueue(id, f.q, f.qk, f.pk, f.r)
        index_move(id, f.qk, f.s, f.qk, 'Pending')
      end
    end
  end
  redis.call('DEL', hand)
end

-- park: qk worker held_key lease_until hand registration token... Sent right before
-- "BLPOP hand wake" (see wakeup.py). Gives back what an earlier wait left in hand,
-- then claims as claim does; when that claims nothing, registers the worker on
-- P q:Q:parked (the registration's token is the first one) and returns what claim
-- returns. When it does claim, it puts '-' on hand so the BLPOP returns at once.
if op == 'park' then
  local hand = ARGV[9]
  give_back(hand)
  local out = claim(ARGV[5], ARGV[6], ARGV[7], ARGV[8], 11)
  if type(out) == 'table' then
    redis.call('RPUSH', hand, '-')
  else
    redis.call('RPUSH', ARGV[5] .. 'parked', ARGV[10])
  end
  return out
end

-- unpark: qk worker held_key lease_until hand registration [token...]. A wait that
-- ended without a hand-off (timed out, woken by a wake token, cancelled): removes the
-- registration, gives back what was handed meanwhile, then claims with the tokens
-- given as claim does ('-' when none is given).
if op == 'unpark' then
  redis.call('LREM', ARGV[5] .. 'parked', '1', ARGV[10])
  give_back(ARGV[9])
  if #ARGV < 11 then
    return '-'
  end
  return claim(ARGV[5], ARGV[6], ARGV[7], ARGV[8], 11)
end

-- heartbeat: worker held_key lease_until. Extends the leases the worker still holds.
if op == 'heartbeat' then
  local worker, hk, lu = ARGV[5], ARGV[6], ARGV[7]
  local kept = 0
  for _, id in ipairs(redis.call('SMEMBERS', hk)) do
    local key = tkey(id)
    local f = redis.call('HMGET', key, 'by', 's', 'lu')
    -- A lapsed lease stays lapsed: the sweep may be handing the task on already.
    if f[1] == worker and HELD(f[2]) and (tonumber(f[3]) or 0) > now then
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
  local ids = redis.call('ZRANGEBYSCORE', P .. 'inflight', '-inf', now, 'LIMIT', 0, ARGV[5])
  -- Each goes back to its due set at its run_at, so it keeps its place in line.
  for k = #ids, 1, -1 do
    local id = ids[k]
    local key = tkey(id)
    local f = read(key)
    local why
    if f.wrongtype then
      why = 'its key holds no hash'
    elseif f.s then
      why = unusable(id, f.s, f.ra, f.rx, f.r, f.pk, f.q, f.qk, nil, nil)
    end
    if why then
      set_aside(id, why, f.hk, f.qk)
    elseif f.s and HELD(f.s) then
      unhold(key, id, f.hk)
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
        enqueue(id, f.q, f.qk, f.pk, f.r)
      end
      index_move(id, f.qk, f.s, f.qk, new)
    else
      unhold(key, id, f.hk)
    end
  end
  return #ids
end

-- reschedule: id token run_at ('' token = an operator's action, no lease check).
if op == 'reschedule' then
  local id, token, run_at = ARGV[5], ARGV[6], ARGV[7]
  local key = tkey(id)
  local f = read(key)
  if not f.s then
    return { 'notfound' }
  end
  if token ~= '' then
    local no = refuse(f, token, resent)
    if no then
      return no
    end
  end
  if f.s == 'Done' or f.s == 'Killed' then
    return { 'transition', f.s } -- resume brings a killed task back, not reschedule
  end
  if token ~= '' then
    redis.call('HSET', key, 'ltok', token)
  end
  if READY(f.s) then
    unqueue(id, f.qk, f.pk)
  end
  unhold(key, id, f.hk)
  if HELD(f.s) then
    -- A held task gives its current attempt back, as a release does.
    redis.call('HSET', key, 's', 'Pending', 'r', run_at, 'a', math.max(0, f.a - 1))
  else
    redis.call('HSET', key, 's', 'Pending', 'r', run_at)
  end
  enqueue(id, f.q, f.qk, f.pk, run_at)
  if f.s ~= 'Pending' then
    index_move(id, f.qk, f.s, f.qk, 'Pending')
  end
  return { 'ok', 'Pending' }
end

-- resume: id. Failed, Killed or held tasks become Pending and ready now; so does a
-- task set aside in P malformed once its record passes the checks again (still
-- unusable: an error saying why).
if op == 'resume' then
  local id = ARGV[5]
  local key = tkey(id)
  local f = read(key)
  if redis.call('HEXISTS', P .. 'malformed', id) == 1 then
    local why = 'its key holds no hash'
    if not f.wrongtype then
      why = unusable(id, f.s, f.ra, f.rx, f.r, f.pk, f.q, f.qk, nil, nil)
    end
    if why then
      return redis.error_reply('conveyor-redis: task ' .. id .. ' is still malformed: ' .. why)
    end
    redis.call('HDEL', P .. 'malformed', id)
    redis.call('HDEL', key, 'by', 'tok', 'lu', 'hk')
    redis.call('HSET', key, 's', 'Pending', 'r', NOW)
    enqueue(id, f.q, f.qk, f.pk, NOW)
    index_move(id, f.qk, nil, f.qk, 'Pending')
    return 1
  end
  if not (f.s == 'Failed' or f.s == 'Killed' or HELD(f.s)) then
    return 0
  end
  if READY(f.s) then
    unqueue(id, f.qk, f.pk)
  end
  unhold(key, id, f.hk)
  local attempt = f.a
  if f.s == 'Killed' then
    attempt = 0
  elseif HELD(f.s) then
    attempt = math.max(0, f.a - 1) -- the holder's attempt given back, as a release does
  end
  redis.call('HSET', key, 's', 'Pending', 'a', attempt, 'r', NOW)
  enqueue(id, f.q, f.qk, f.pk, NOW)
  index_move(id, f.qk, f.s, f.qk, 'Pending')
  return 1
end

-- update: id expected_status then name/value pairs of the new fields. Fields
-- absent from the pairs are deleted (res, err, by, tok, lu, hk). Status moves
-- between the queue structures accordingly.
if op == 'update' then
  local id, expected = ARGV[5], ARGV[6]
  local key = tkey(id)
  local f = read(key)
  if not f.s then
    return { 'notfound' }
  end
  if f.s ~= expected then
    return { 'conflict', f.s }
  end
  local new = {}
  for i = 7, #ARGV, 2 do
    new[ARGV[i]] = ARGV[i + 1]
  end
  if READY(f.s) then
    unqueue(id, f.qk, f.pk)
  end
  unhold(key, id, f.hk)
  redis.call('HDEL', key, 'res', 'err', 'meta', 'n')
  local pairs_ = {}
  for i = 7, #ARGV do
    pairs_[#pairs_ + 1] = ARGV[i]
  end
  redis.call('HSET', key, unpack(pairs_))
  redis.call('SADD', P .. 'queues', new.q)
  if READY(new.s) then
    enqueue(id, new.q, new.qk, new.pk, new.r)
  elseif HELD(new.s) and new.tok then
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
  local qk, status = ARGV[5], ARGV[6]
  local ids = redis.call('ZRANGE', qk .. 's:' .. status, 0, tonumber(ARGV[7]) - 1)
  for _, id in ipairs(ids) do
    redis.call('DEL', tkey(id))
    index_move(id, qk, status, nil, nil)
  end
  return #ids
end

return redis.error_reply('conveyor-redis: unknown operation ' .. tostring(op))
