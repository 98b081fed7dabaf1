--[[
  An actor process took a call with a blocking move (mailbox -> running). If the actor is no longer
  hosted on this process's node (the head restarted it elsewhere while this node was cut off), the
  call goes back to the front of the mailbox and the process must exit (returns 0).
  At a new incarnation's start (call ''), calls a previous incarnation took but never began go back
  to the mailbox, in order.
  ARGV: prefix, actorId, node, call
]]
local P, id, node, call = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = P .. ':actor:' .. id
if call == '' then
  local started = key .. ':started'
  local run = redis.call('LRANGE', key .. ':run', 0, -1)
  for i = #run, 1, -1 do
    local c = run[i]
    local callId = cmsgpack.unpack(c)[1]
    if redis.call('HEXISTS', started, callId) == 0 then
      redis.call('LREM', key .. ':run', 1, c)
      redis.call('LPUSH', key .. ':mbox', c)
    end
  end
  return 1
end
if redis.call('HGET', key, 'host') == node then return 1 end
redis.call('LREM', key .. ':run', 1, call)
redis.call('LPUSH', key .. ':mbox', call)
return 0
