--[[
  A streaming generator yielded several small items, sent together: for each, create the item's object
  (one reference, held by the consumer, owned by the consumer's owner), store its value, and push the
  item notes to the consumer in order. All or none: the first write is where Redis out of memory refuses.
  ARGV: prefix, owner, consumerProc, consumerInbox, then per item: itemId, value, note, innerCount, innerId...
]]
--@include "objects"
local owner, consumer, inbox = ARGV[2], ARGV[3], ARGV[4]
local notes = {}
local i = 5
while i <= #ARGV do
  local id, value, note, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local metaKey = P .. ':m:' .. id
  redis.call('SET', P .. ':v:' .. id, value)
  redis.call('HSET', metaKey, 'rc', 1, 'own', owner, 'ch', 0)
  redis.call('SADD', P .. ':owned:' .. owner, id)
  redis.call('SADD', P .. ':held:' .. consumer, id)
  holdInner(id, i + 4, i + 3 + n)
  notes[#notes + 1] = note
  i = i + 4 + n
end
redis.call('RPUSH', inbox, unpack(notes))
return #notes
