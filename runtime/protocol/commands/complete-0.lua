--[[
  Records a task's result and tells its caller. The result is stored only if
  somebody still holds its ref; otherwise whatever the worker wrote is deleted.
  With a lock key, only the holder of the job's BullMQ lock (token) may complete it: a node that was
  declared dead, whose job was handed to another node, cannot apply its result as well (returns -1).
  A task run as part of a bundle (one job, several tasks) records how far the bundle got, so that whoever
  recovers the job after a crash knows which tasks are done.
  ARGV: prefix, id, callerInbox, value ('' when the worker stored it), notification, chunkCount, lockKey ('' for none), token,
        progressKey ('' for none), progressIndex, innerId...
]]
--@include "objects"
local id, inbox, value, note, ch, lockKey, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7], ARGV[8]
if lockKey ~= '' and redis.call('GET', lockKey) ~= token then return -1 end
if ARGV[9] ~= '' then redis.call('SET', ARGV[9], ARGV[10], 'EX', 86400) end
local live = storeResult(id, value, ch, 11)
redis.call('RPUSH', inbox, note)
return live and 1 or 0
