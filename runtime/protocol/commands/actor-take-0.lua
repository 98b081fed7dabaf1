--[[
  An actor process took a call over a direct channel (no mailbox): it creates the call's result object
  (one reference, held by the caller, as create does for calls through the mailbox), puts the call in
  the running list, as BLMOVE from the mailbox would, and sets its started mark. Sent before the method runs, on the connection the
  call's report follows, so the report finds both; a restart and the orphan sweep treat it as any taken call.
  ARGV: prefix, actorId, call (exact bytes), callId, owner, caller
]]
local P, actorId, call, id, owner, caller = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
redis.call('HSET', P .. ':m:' .. id, 'rc', 1, 'own', owner, 'ch', 0)
redis.call('SADD', P .. ':owned:' .. owner, id)
redis.call('SADD', P .. ':held:' .. caller, id)
redis.call('RPUSH', P .. ':actor:' .. actorId .. ':run', call)
redis.call('HSET', P .. ':actor:' .. actorId .. ':started', id, '1')
return 1
