--[[
  Registers a new actor. A name taken in its namespace makes the actor dead at once, with the
  reason in `cause` (ARGV[4], base64, made by the caller); its calls then fail saying so.
  ARGV: prefix, actorId, namespace/name ('' when unnamed), nameTakenCause, detached, owner, field, value, ...
  Returns the id of the actor that holds the name, or '' when this one was registered.
]]
local P, id, name, takenCause, detached, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = P .. ':actor:' .. id
for i = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('SADD', P .. ':actors', id)
if detached ~= '1' then redis.call('SADD', P .. ':owned-actors:' .. owner, id) end
if name ~= '' then
  local sep = string.find(name, '/', 1, true)
  local namesKey = P .. ':actor-names:' .. string.sub(name, 1, sep - 1)
  local n = string.sub(name, sep + 1)
  local holder = redis.call('HGET', namesKey, n)
  if holder and redis.call('HGET', P .. ':actor:' .. holder, 'state') ~= 'dead' then
    redis.call('HSET', key, 'state', 'dead', 'cause', takenCause)
    return holder
  end
  redis.call('HSET', namesKey, n, id)
end
return ''
