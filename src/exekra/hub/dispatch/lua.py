"""The queue's Lua scripts: every change that touches more than one key is one atomic script.

Keys (prefix `exekra:`), see docs/queue.md:
  q:<signature>   ZSET  waiting execution ids of one constraint signature, score = priority then age
  signatures      HASH  signature -> its constraints as JSON: {"pin": id} or {"type": t, "labels": [...]}, each
                        with "activities": [...] when the executions need activities not every runner has
  job:<id>        HASH  the job record of a waiting execution (state, attempts, lastError, timestamps, seq, and for
                        an execution with a concurrency group: `group`, its held set's key, and `groupInfo`)
  held:<group>    ZSET  executions parked because their concurrency group is full (same scores), out of the way
                        of every peek until a slot of the group frees
  held            HASH  held set key -> its group as JSON: {"workflowId": id, "key": value}
  jobs:completed  LIST  newest-first JSON records of jobs that left the queue, capped
  jobs:failed     LIST  newest-first JSON records of dispatch failures, capped

Queue keys are derived inside the scripts from the signature, so this needs a single Redis server (no
Cluster), as Exekra's deployments have.
"""

from __future__ import annotations

# Append a JSON record to a capped history list (newest first).
_PUSH_CAPPED = """
local function push_capped(list, record, keep)
  if keep > 0 then
    redis.call('LPUSH', list, record)
    redis.call('LTRIM', list, 0, keep - 1)
  else
    redis.call('DEL', list)
  end
end
"""

# KEYS: signatures, q:<sig>, job:<id>, held
# ARGV: sig, constraints JSON, id, score, now ms, priority, queuedAt ms, held set key ('' = no group), group JSON,
#       release ('1': take it out of its held set first; else a parked id is left alone)
# Adds the id to its signature's queue (a no-op if already there) and (re)writes its job record; returns 1 if added.
# `seq` counts enqueues, so a reconciliation that judged an older enqueue stale cannot remove a newer one.
ENQUEUE = """
if redis.call('HGET', KEYS[3], 'state') == 'held' then
  if ARGV[10] ~= '1' then return 0 end
  local held = redis.call('HGET', KEYS[3], 'group')
  redis.call('ZREM', held, ARGV[3])
  if redis.call('ZCARD', held) == 0 then redis.call('HDEL', KEYS[4], held) end
  redis.call('HSET', KEYS[3], 'state', 'waiting')
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local added = redis.call('ZADD', KEYS[2], 'NX', ARGV[4], ARGV[3])
redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('HSET', KEYS[3], 'id', ARGV[3], 'sig', ARGV[1], 'priority', ARGV[6], 'queuedAt', ARGV[7])
if ARGV[8] ~= '' then redis.call('HSET', KEYS[3], 'group', ARGV[8], 'groupInfo', ARGV[9]) end
redis.call('HSETNX', KEYS[3], 'state', 'waiting')
redis.call('HSETNX', KEYS[3], 'attempts', 0)
redis.call('HSETNX', KEYS[3], 'enqueuedAt', ARGV[5])
return added
"""

# KEYS: signatures, job:<id>, held
# ARGV: queue key prefix, id, expected seq ('' = any)
# An id whose concurrency group is full leaves its signature's queue for its group's held set, with its score, so
# that no peek finds it until a slot frees (ENQUEUE with release). 0 when it is not waiting in a queue, has no
# group, or was enqueued again since `expected seq`.
PARK = """
local job = {}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do job[fields[i]] = fields[i + 1] end
if job.state == 'held' or not job.group or not job.sig then return 0 end
if ARGV[3] ~= '' and (job.seq or '') ~= ARGV[3] then return 0 end
local queue = ARGV[1] .. job.sig
local score = redis.call('ZSCORE', queue, ARGV[2])
if not score then return 0 end
redis.call('ZREM', queue, ARGV[2])
if redis.call('ZCARD', queue) == 0 then redis.call('HDEL', KEYS[1], job.sig) end
redis.call('ZADD', job.group, score, ARGV[2])
redis.call('HSET', KEYS[3], job.group, job.groupInfo)
redis.call('HSET', KEYS[2], 'state', 'held')
return 1
"""

# KEYS: signatures
# ARGV: queue key prefix, job key prefix, runner id, has type ('1'/'0'), runner type, number of labels n,
#       n labels, then the runner's declared activities
# The best head (lowest score, then smallest id, as PostgreSQL orders) across the signatures this runner
# satisfies; returns {id, sig, seq} or nil. Signatures whose queue is empty are dropped from the index.
PEEK = """
local runner_labels, runner_activities = {}, {}
local last_label = 6 + tonumber(ARGV[6])
for i = 7, last_label do runner_labels[ARGV[i]] = true end
for i = last_label + 1, #ARGV do runner_activities[ARGV[i]] = true end
local function has_all(wanted, held)
  if wanted then
    for _, name in ipairs(wanted) do
      if not held[name] then return false end
    end
  end
  return true
end
local best_id, best_score, best_sig
local index = redis.call('HGETALL', KEYS[1])
for i = 1, #index, 2 do
  local sig, c = index[i], cjson.decode(index[i + 1])
  local eligible
  if c.pin then
    eligible = c.pin == ARGV[3]
  else
    eligible = (c.type == nil or (ARGV[4] == '1' and c.type == ARGV[5])) and has_all(c.labels, runner_labels)
  end
  eligible = eligible and has_all(c.activities, runner_activities)
  if eligible then
    local head = redis.call('ZRANGE', ARGV[1] .. sig, 0, 0, 'WITHSCORES')
    if #head == 0 then
      redis.call('HDEL', KEYS[1], sig)
    else
      local score = tonumber(head[2])
      if best_score == nil or score < best_score or (score == best_score and head[1] < best_id) then
        best_id, best_score, best_sig = head[1], score, sig
      end
    end
  end
end
if best_id == nil then return nil end
local seq = redis.call('HGET', ARGV[2] .. best_id, 'seq') or ''
return {best_id, best_sig, seq}
"""

# KEYS: signatures, job:<id>, jobs:completed, held
# ARGV: queue key prefix, id, signature hint, expected seq ('' = any), outcome, runner id, now ms, keep,
#       [channel, message: published (an assignment's wake-up for the other hub processes)]
# The job leaves the queue (assigned, or its execution is no longer QUEUED), or its held set, and is recorded in
# history.
# Returns 0 without touching anything when `expected seq` is given and the job was enqueued again since; else 1,
# or with a channel the number of subscribers that received the message (-1: Redis refused the PUBLISH, e.g. an
# ACL user without the permission: the job is recorded all the same).
FINISH = (
    _PUSH_CAPPED
    + """
local heard = 1
if ARGV[9] then
  heard = redis.pcall('PUBLISH', ARGV[9], ARGV[10])
  if type(heard) ~= 'number' then heard = -1 end
end
if ARGV[4] ~= '' and (redis.call('HGET', KEYS[2], 'seq') or '') ~= ARGV[4] then return 0 end
local job = {}
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do job[fields[i]] = fields[i + 1] end
local sig = job.sig or ARGV[3]
if sig ~= '' then
  local queue = ARGV[1] .. sig
  redis.call('ZREM', queue, ARGV[2])
  if redis.call('ZCARD', queue) == 0 then redis.call('HDEL', KEYS[1], sig) end
end
if job.state == 'held' then
  redis.call('ZREM', job.group, ARGV[2])
  if redis.call('ZCARD', job.group) == 0 then redis.call('HDEL', KEYS[4], job.group) end
end
redis.call('DEL', KEYS[2])
local record = {id = ARGV[2], outcome = ARGV[5], attempts = tonumber(job.attempts or '0'), finishedAt = tonumber(ARGV[7])}
if ARGV[6] ~= '' then record.runnerId = ARGV[6] end
if job.lastError then record.lastError = job.lastError end
if job.enqueuedAt then record.enqueuedAt = tonumber(job.enqueuedAt) end
if job.queuedAt then record.queuedAt = tonumber(job.queuedAt) end
push_capped(KEYS[3], cjson.encode(record), tonumber(ARGV[8]))
return heard
"""
)

# KEYS: job:<id>, jobs:failed
# ARGV: id, error, attempts, now ms, keep
# A dispatch job gave up: its record says so (the id stays queued for later matches; a parked one stays parked)
# and the failure is kept in the failed history.
FAIL = (
    _PUSH_CAPPED
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'state') ~= 'held' then redis.call('HSET', KEYS[1], 'state', 'failed') end
  redis.call('HSET', KEYS[1], 'lastError', ARGV[2], 'attempts', ARGV[3], 'failedAt', ARGV[4])
end
local record = {id = ARGV[1], outcome = 'failed', lastError = ARGV[2], attempts = tonumber(ARGV[3]), failedAt = tonumber(ARGV[4])}
push_capped(KEYS[2], cjson.encode(record), tonumber(ARGV[5]))
return 1
"""
)
