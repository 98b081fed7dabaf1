#!lua flags=allow-oom
--[[
  Moves a job to a new status, once it has ended never again: the driver's node, the head (the node died) and a stop
  may all try to end one job, and the first wins. Records the fields, appends a `status` entry to the job's log, and
  on an end takes the job out of the pending and active sets and sets the retention of its record and log.
  allow-oom: a full Redis must not leave a job running forever in its record.
  ARGV: prefix, id, status, node ('' any; else only while the job's node is this one), final ('1'/'0'),
        event JSON, now ms, retention ms, log max entries, field, value, ...
  Returns the status it had before ('' when there is no such job); unchanged when that was final or the node differs.
]]
local P, id, status, node, final = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = P .. ':job:' .. id
local cur = redis.call('HGET', key, 'status')
if not cur then return '' end
if cur == 'succeeded' or cur == 'failed' or cur == 'stopped' then return cur end
if node ~= '' and redis.call('HGET', key, 'node') ~= node then return cur end
redis.call('HSET', key, 'status', status)
for i = 10, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
local log = key .. ':log'
redis.call('XADD', log, 'MAXLEN', '~', ARGV[9], '*', 'k', 'status', 'd', ARGV[6], 't', ARGV[7])
if final == '1' then
  redis.call('ZREM', P .. ':jobs:pending', id)
  redis.call('SREM', P .. ':jobs:active', id)
  redis.call('PEXPIRE', key, ARGV[8])
  redis.call('PEXPIRE', log, ARGV[8])
end
return cur
