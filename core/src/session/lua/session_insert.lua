-- Creates a session unless its key exists.
-- KEYS[1] session key, KEYS[2] companion key (only read when ARGV[3] is not empty)
-- ARGV[1] codec ('json' | 'hash'), ARGV[2] idle TTL ms, ARGV[3] absolute lifetime ms or '',
-- ARGV[4] the companion's value: the session's own idle TTL in ms, or '1' for "the
-- configuration's idle TTL"; ARGV[5] the JSON text, or ARGV[5..] field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[2])
if ARGV[3] ~= '' then
  local lifetime = tonumber(ARGV[3])
  if lifetime < ttl then ttl = lifetime end
  redis.call('SET', KEYS[2], ARGV[4], 'PX', lifetime)
end
if ARGV[1] == 'json' then
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ttl)
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
