#!lua flags=allow-oom
--[[
  An actor's process is gone. With mode 'dead' the actor is dead for good (cause in ARGV[4]); with
  'restart' it restarts (restarts + 1). Either way the calls it had taken are handed back to the
  caller of this script, which fails or requeues them; for 'dead' the mailbox is handed back too,
  and the name is freed. Done in one step so that no call slips in behind a death.
  ARGV: prefix, actorId, mode, cause
  Returns {runningCalls, queuedCalls, startedCallIds}.
  Runs when Redis is out of memory too (allow-oom): see RESERVED in commands.ts.
]]
local P, id, mode, cause = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = P .. ':actor:' .. id
local runKey, mboxKey = key .. ':run', key .. ':mbox'
local running = redis.call('LRANGE', runKey, 0, -1)
local started = redis.call('HKEYS', key .. ':started')
redis.call('DEL', runKey, key .. ':started')
local queued = {}
if mode == 'dead' then
  queued = redis.call('LRANGE', mboxKey, 0, -1)
  redis.call('DEL', mboxKey)
  redis.call('HSET', key, 'state', 'dead', 'cause', cause, 'pid', '', 'proc', '')
  local name, ns = redis.call('HGET', key, 'name'), redis.call('HGET', key, 'namespace')
  if name and name ~= '' then
    local namesKey = P .. ':actor-names:' .. ns
    if redis.call('HGET', namesKey, name) == id then redis.call('HDEL', namesKey, name) end
  end
  redis.call('SREM', P .. ':owned-actors:' .. (redis.call('HGET', key, 'owner') or ''), id)
else
  redis.call('HSET', key, 'state', 'restarting', 'pid', '', 'proc', '')
  redis.call('HINCRBY', key, 'restarts', 1)
end
return { running, queued, started }
