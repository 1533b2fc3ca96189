-- Replaces a hash session's fields if the key still exists, keeping its TTL.
-- KEYS[1] session key; ARGV field, value, field, value, ...
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV))
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
