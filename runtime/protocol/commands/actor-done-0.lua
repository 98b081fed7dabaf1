--[[
  An actor call finished: store its result (if its ref is still held), tell the caller, and take
  the call out of the actor's running list.
  ARGV: prefix, actorId, call (exact bytes, for LREM), callId, callerInbox, value ('' if the process stored it), note, chunkCount, innerId...
]]
--@include "objects"
local actorId, call, id, inbox, value, note, ch = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local metaKey = P .. ':m:' .. id
if redis.call('EXISTS', metaKey) == 1 then
  if value ~= '' then redis.call('SET', P .. ':v:' .. id, value) end
  redis.call('HSET', metaKey, 'ch', ch)
  holdInner(id, 9)
else
  redis.call('DEL', P .. ':v:' .. id)
  for i = 0, ch - 1 do redis.call('DEL', P .. ':v:' .. id .. ':' .. i) end
end
redis.call('LREM', P .. ':actor:' .. actorId .. ':run', 1, call)
redis.call('HDEL', P .. ':actor:' .. actorId .. ':started', id)
redis.call('RPUSH', inbox, note)
return 1
