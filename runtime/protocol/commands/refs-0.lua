#!lua flags=allow-oom
--[[
  Applies a process's reference changes in order.
  ARGV: prefix, proc, (op, id)...   op 'h': the process now holds a ref; 'r': it dropped its last one.
  Runs when Redis is out of memory too (allow-oom): see RESERVED in commands.ts.
]]
--@include "objects"
local heldKey = P .. ':held:' .. ARGV[2]
for i = 3, #ARGV, 2 do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'h' then
    local metaKey = P .. ':m:' .. id
    if redis.call('EXISTS', metaKey) == 1 and redis.call('SADD', heldKey, id) == 1 then
      redis.call('HINCRBY', metaKey, 'rc', 1)
    end
  elseif redis.call('SREM', heldKey, id) == 1 then
    decref(id)
  end
end
return 1
