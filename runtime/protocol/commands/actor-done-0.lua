--[[
  An actor call finished: store its result (if its ref is still held), tell the caller, and take
  the call out of the actor's running list.
  With fetchNext '1', also takes the next call from the mailbox and returns it (saving the actor a
  round trip per call when calls queue up); otherwise returns false.
  fetchNext carries the node the process runs on: no call is taken once the actor is hosted elsewhere
  (a process cut off by a partition, whose actor the head restarted on another node).
  ARGV: prefix, actorId, call (exact bytes, for LREM), callId, callerInbox, value ('' if the process stored it), note, chunkCount, fetchNext ('' or node id), innerId...
]]
--@include "objects"
local actorId, call, id, inbox, value, note, ch, fetchNext = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
storeResult(id, value, ch, 10)
redis.call('LREM', P .. ':actor:' .. actorId .. ':run', 1, call)
redis.call('HDEL', P .. ':actor:' .. actorId .. ':started', id)
redis.call('RPUSH', inbox, note)
if fetchNext ~= '' then
  local prefix = P .. ':actor:' .. actorId
  if redis.call('HGET', prefix, 'host') ~= fetchNext then return false end
  return redis.call('LMOVE', prefix .. ':mbox', prefix .. ':run', 'LEFT', 'RIGHT')
end
return false
