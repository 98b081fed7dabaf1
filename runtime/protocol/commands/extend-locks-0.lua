#!lua flags=allow-oom
--[[
  Extends the BullMQ locks of jobs a node runs, as BullMQ's extendLocks does, but also when Redis is out
  of memory (allow-oom; each write overwrites a lock), so that a task running through a full store is
  not taken for stalled and run again.
  ARGV: queueKey (BullMQ's prefix:queue), durationMs, (jobId, token)...
  Returns how many locks were still held (and are extended).
]]
local base, ms = ARGV[1], ARGV[2]
local held = 0
for i = 3, #ARGV, 2 do
  local lock = base .. ':' .. ARGV[i] .. ':lock'
  if redis.call('GET', lock) == ARGV[i + 1] then
    redis.call('SET', lock, ARGV[i + 1], 'PX', ms)
    redis.call('SREM', base .. ':stalled', ARGV[i])
    held = held + 1
  end
end
return held
