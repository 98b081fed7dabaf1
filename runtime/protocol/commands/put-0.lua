--[[
  Stores a new object with one reference held by the putting process.
  ARGV: prefix, owner, proc, id, value, chunkCount, innerId...
  When chunkCount > 0 the chunks were written before this call and value is the header.
]]
--@include "objects"
local owner, proc, id, value, ch = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
redis.call('SET', P .. ':v:' .. id, value)
redis.call('HSET', P .. ':m:' .. id, 'rc', 1, 'own', owner, 'ch', ch)
redis.call('SADD', P .. ':owned:' .. owner, id)
redis.call('SADD', P .. ':held:' .. proc, id)
holdInner(id, 7)
return 1
