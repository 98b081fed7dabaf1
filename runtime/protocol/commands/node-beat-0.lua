#!lua flags=allow-oom
--[[
  A node agent's heartbeat: its record and the time. A node the head has declared dead is not brought
  back by its own heartbeat (returns 0): it must join again as a new node.
  ARGV: prefix, nodeId, infoJson, now
  Runs when Redis is out of memory too (allow-oom): see RESERVED in commands.ts.
]]
local P, id = ARGV[1], ARGV[2]
local raw = redis.call('HGET', P .. ':nodes', id)
if raw and cjson.decode(raw).state == 'dead' then return 0 end
redis.call('HSET', P .. ':nodes', id, ARGV[3])
redis.call('ZADD', P .. ':node-hb', ARGV[4], id)
return 1
