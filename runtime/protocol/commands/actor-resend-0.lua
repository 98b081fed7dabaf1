--[[
  A caller lost its direct channel to an actor with a call unanswered. If the actor took the call (its
  result object exists: actor-take made it), the call is in Redis's hands already: its report, a restart
  or the actor's end settles it through the caller's inbox. If not, the call never ran: it goes to the
  mailbox as any call would, with its result object, unless the actor is dead.
  ARGV: prefix, actorId, call (exact bytes), callId, owner, caller
  Returns {'taken' | 'queued' | 'dead', cause}.
]]
local P, actorId, call, id, owner, caller = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if redis.call('EXISTS', P .. ':m:' .. id) == 1 then return { 'taken', '' } end
local key = P .. ':actor:' .. actorId
local state = redis.call('HGET', key, 'state')
if not state or state == 'dead' then return { 'dead', redis.call('HGET', key, 'cause') or '' } end
redis.call('HSET', P .. ':m:' .. id, 'rc', 1, 'own', owner, 'ch', 0)
redis.call('SADD', P .. ':owned:' .. owner, id)
redis.call('SADD', P .. ':held:' .. caller, id)
redis.call('RPUSH', key .. ':mbox', call)
return { 'queued', '' }
