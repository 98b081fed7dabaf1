#!lua flags=allow-oom
--[[
  A small control write that must get through when Redis is out of memory (allow-oom): a liveness beat
  (a driver's or the head's: one field overwritten), so that a full object store does not make the
  cluster declare the living dead, or a note to a process's inbox that ends what it waits on.
  ARGV: op, key, a, b   op 'z': ZADD key a b; 'h': HSET key a b; 'l': RPUSH key a
]]
local op, key = ARGV[1], ARGV[2]
if op == 'z' then return redis.call('ZADD', key, ARGV[3], ARGV[4]) end
if op == 'h' then return redis.call('HSET', key, ARGV[3], ARGV[4]) end
return redis.call('RPUSH', key, ARGV[3])
