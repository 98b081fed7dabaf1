--[[
  An actor call finished: store its result (if its ref is still held), tell the caller, and take
  the call out of the actor's running list.
  With fetchNext n > 0, also moves up to n next calls from the mailbox to the running list and returns
  them (saving the actor a round trip per call when calls queue up); otherwise returns an empty list.
  Only the actor's current process may fetch: a report from a process that already died (it reaches
  Redis after the restart handed the running calls back) must not take calls nobody will run.
  ARGV: prefix, actorId, call (exact bytes, for LREM), callId, callerInbox, value ('' if the process stored it), note, chunkCount, fetchNext,
        proc (the reporting process), innerId...
]]
--@include "objects"
local actorId, call, id, inbox, value, note, ch, fetchNext = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
storeResult(id, value, ch, 11)
redis.call('LREM', P .. ':actor:' .. actorId .. ':run', 1, call)
redis.call('HDEL', P .. ':actor:' .. actorId .. ':started', id)
redis.call('RPUSH', inbox, note)
local taken = {}
local prefix = P .. ':actor:' .. actorId
if redis.call('HGET', prefix, 'proc') ~= ARGV[10] then return taken end
for i = 1, fetchNext do
  local c = redis.call('LMOVE', prefix .. ':mbox', prefix .. ':run', 'LEFT', 'RIGHT')
  if not c then break end
  taken[i] = c
end
return taken
