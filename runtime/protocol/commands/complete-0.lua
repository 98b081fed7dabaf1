--[[
  Records a task's result and tells its caller. The result is stored only if
  somebody still holds its ref; otherwise whatever the worker wrote is deleted.
  ARGV: prefix, id, callerInbox, value ('' when the worker stored it), notification, chunkCount, innerId...
]]
--@include "objects"
local id, inbox, value, note, ch = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local metaKey = P .. ':m:' .. id
local live = redis.call('EXISTS', metaKey) == 1
if live then
  if value ~= '' then redis.call('SET', P .. ':v:' .. id, value) end
  redis.call('HSET', metaKey, 'ch', ch)
  holdInner(id, 7)
else
  redis.call('DEL', P .. ':v:' .. id)
  for i = 0, ch - 1 do redis.call('DEL', P .. ':v:' .. id .. ':' .. i) end
end
redis.call('RPUSH', inbox, note)
return live and 1 or 0
