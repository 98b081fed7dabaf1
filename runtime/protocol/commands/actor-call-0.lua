--[[
  Queues calls in an actor's mailbox, unless the actor is dead.
  ARGV: prefix, actorId, call...
  Returns {state, cause}: when state is 'dead' nothing was queued.
]]
local P, id = ARGV[1], ARGV[2]
local key = P .. ':actor:' .. id
local state = redis.call('HGET', key, 'state')
if not state or state == 'dead' then
  return { state or 'dead', redis.call('HGET', key, 'cause') or '' }
end
for i = 3, #ARGV do redis.call('RPUSH', P .. ':actor:' .. id .. ':mbox', ARGV[i]) end
return { state, '' }
