-- Creates a session unless its key exists.
-- KEYS[1] session key, KEYS[2] deadline key (only read when ARGV[3] is not empty)
-- ARGV[1] codec ('json' | 'hash'), ARGV[2] idle TTL ms, ARGV[3] absolute lifetime ms or '',
-- ARGV[4] the JSON text, or ARGV[4..] field, value, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[2])
if ARGV[3] ~= '' then
  local lifetime = tonumber(ARGV[3])
  if lifetime < ttl then ttl = lifetime end
  redis.call('SET', KEYS[2], '1', 'PX', lifetime)
end
if ARGV[1] == 'json' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ttl)
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
