-- Shared object-store helpers. Keys are derived from the prefix in ARGV[1]
-- (nodus runs on one Redis, not Redis Cluster, so scripts may touch keys they compute).
local P = ARGV[1]

-- Deletes an object's value; a record of bytes in a node's object store (tag byte 3,
-- `store|...`) is queued for that store's agent, which deletes the files, and so is each
-- copy other agents pulled (`store:copies:<id>`).
local function dropValue(id)
  local vkey = P .. ':v:' .. id
  if redis.call('GETRANGE', vkey, 0, 0) == '\3' then
    local records = { string.sub(redis.call('GET', vkey), 2) }
    -- Copies other nodes' agents pulled into their stores go too.
    local copiesKey = P .. ':store:copies:' .. id
    for _, c in ipairs(redis.call('SMEMBERS', copiesKey)) do table.insert(records, c) end
    redis.call('DEL', copiesKey)
    for _, record in ipairs(records) do
      local store = string.match(record, '^([^|]+)|')
      if store then redis.call('RPUSH', P .. ':store:free:' .. store, record .. '|' .. id) end
    end
  end
  redis.call('DEL', vkey)
end

-- Deletes an object: its value, chunks, metadata and owner entry, then releases
-- the references it held on objects nested inside it. Iterative, so a long chain
-- of nested refs cannot overflow Lua's stack.
local function freeObject(rootId)
  local stack = { rootId }
  while #stack > 0 do
    local id = table.remove(stack)
    local metaKey = P .. ':m:' .. id
    local ch = tonumber(redis.call('HGET', metaKey, 'ch') or '0') or 0
    local own = redis.call('HGET', metaKey, 'own')
    dropValue(id)
    redis.call('DEL', metaKey)
    for i = 0, ch - 1 do redis.call('DEL', P .. ':v:' .. id .. ':' .. i) end
    if own then redis.call('SREM', P .. ':owned:' .. own, id) end
    local innerKey = P .. ':in:' .. id
    local inner = redis.call('SMEMBERS', innerKey)
    redis.call('DEL', innerKey)
    for _, innerId in ipairs(inner) do
      local innerMeta = P .. ':m:' .. innerId
      if redis.call('EXISTS', innerMeta) == 1 then
        if redis.call('HINCRBY', innerMeta, 'rc', -1) <= 0 then table.insert(stack, innerId) end
      end
    end
  end
end

-- Drops one reference; frees the object when it was the last.
local function decref(id)
  local metaKey = P .. ':m:' .. id
  if redis.call('EXISTS', metaKey) == 0 then return end
  if redis.call('HINCRBY', metaKey, 'rc', -1) <= 0 then freeObject(id) end
end

-- The object `outer` holds a reference on each object nested in it: ARGV[first..last] (last: the end of ARGV).
local function holdInner(outer, first, last)
  for i = first, last or #ARGV do
    local innerMeta = P .. ':m:' .. ARGV[i]
    if redis.call('EXISTS', innerMeta) == 1 then
      redis.call('HINCRBY', innerMeta, 'rc', 1)
      redis.call('SADD', P .. ':in:' .. outer, ARGV[i])
    end
  end
end

-- Records a finished call's result: stored only if somebody still holds its ref (its metadata
-- exists); otherwise whatever the worker wrote for it is deleted. Inner refs are ARGV[firstInner..].
local function storeResult(id, value, ch, firstInner)
  local metaKey = P .. ':m:' .. id
  if redis.call('EXISTS', metaKey) == 1 then
    if value ~= '' then redis.call('SET', P .. ':v:' .. id, value) end
    redis.call('HSET', metaKey, 'ch', ch)
    holdInner(id, firstInner)
    return true
  end
  dropValue(id)
  for i = 0, ch - 1 do redis.call('DEL', P .. ':v:' .. id .. ':' .. i) end
  return false
end
