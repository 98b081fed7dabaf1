#!lua flags=allow-oom
--[[
  A process ended (shutdown, death): drop every reference it held and, for a
  driver, delete every object it owns whoever else holds it (as in Ray, objects
  die with their owner). Returns the number of objects it owned.
  ARGV: prefix, proc, isDriver
  Runs when Redis is out of memory too (allow-oom): see RESERVED in commands.ts.
]]
--@include "objects"
local proc = ARGV[2]
local heldKey = P .. ':held:' .. proc
for _, id in ipairs(redis.call('SMEMBERS', heldKey)) do decref(id) end
redis.call('DEL', heldKey, P .. ':inbox:' .. proc)
local owned = 0
if ARGV[3] == '1' then
  local ownedKey = P .. ':owned:' .. proc
  for _, id in ipairs(redis.call('SMEMBERS', ownedKey)) do
    if redis.call('EXISTS', P .. ':m:' .. id) == 1 then
      freeObject(id)
      owned = owned + 1
    end
  end
  redis.call('DEL', ownedKey)
end
return owned
