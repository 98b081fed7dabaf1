--[[
  A streaming generator yielded: create the item's object (one reference, held by the consumer,
  owned by the consumer's owner), store its value, and push the item note to the consumer.
  ARGV: prefix, itemId, owner, consumerProc, consumerInbox, value ('' when chunks/value were written first), chunkCount, note, innerId...
]]
--@include "objects"
local id, owner, consumer, inbox, value, ch, note = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8]
if value ~= '' then redis.call('SET', P .. ':v:' .. id, value) end
redis.call('HSET', P .. ':m:' .. id, 'rc', 1, 'own', owner, 'ch', ch)
redis.call('SADD', P .. ':owned:' .. owner, id)
redis.call('SADD', P .. ':held:' .. consumer, id)
holdInner(id, 9)
redis.call('RPUSH', inbox, note)
return 1
