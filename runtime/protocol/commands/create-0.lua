--[[
  Creates the metadata of objects that do not exist yet (the return values of
  submitted tasks), each with one reference held by the submitting process.
  ARGV: prefix, owner, proc, id...
]]
local P, owner, proc = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  redis.call('HSET', P .. ':m:' .. ARGV[i], 'rc', 1, 'own', owner, 'ch', 0)
  redis.call('SADD', P .. ':owned:' .. owner, ARGV[i])
  redis.call('SADD', P .. ':held:' .. proc, ARGV[i])
end
return #ARGV - 3
