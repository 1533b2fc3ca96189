-- Creates a session unless its key exists.
-- KEYS[1] session key, KEYS[2] companion key (optional: every session has one when the
-- configuration names it)
-- ARGV[1] codec ('json' | 'hash'), ARGV[2] idle TTL ms, ARGV[3] absolute lifetime ms or '',
-- ARGV[4] the companion's value: the session's own idle TTL in ms, '1' for "the
-- configuration's idle TTL", or '0' for "no deadline" (without a lifetime: the companion
-- then has the session's TTL, and loads keep it so); ARGV[5] the JSON text, or ARGV[5..]
-- field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local ttl = tonumber(ARGV[2])
if KEYS[2] then
  if ARGV[3] ~= '' then
    local lifetime = tonumber(ARGV[3])
    if lifetime < ttl then ttl = lifetime end
    redis.call('SET', KEYS[2], ARGV[4], 'PX', lifetime)
  else
    redis.call('SET', KEYS[2], '0', 'PX', ttl)
  end
end
if ARGV[1] == 'json' then
  redis.call('SET', KEYS[1], ARGV[5], 'PX', ttl)
else
  redis.call('HSET', KEYS[1], unpack(ARGV, 5))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
