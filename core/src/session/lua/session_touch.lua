-- Load-and-touch of a session that needs a check before its TTL may be reset: a hash
-- session (the type must be checked first, so that a key of another type is never
-- touched) and any session with a companion key. With a companion, every session has one:
-- a session whose companion is gone (expired, evicted, deleted), has lost its expiry or is
-- in its last millisecond is over. The companion's TTL is the session's absolute deadline
-- and caps the idle TTL, so the session dies at its deadline however active; its value is
-- the session's own idle TTL, '1' (the configuration's), or '0' for a session without a
-- deadline, whose companion is then reset with it.
-- KEYS[1] session key, KEYS[2] companion key (optional);
-- ARGV[1] codec, ARGV[2] the configuration's idle TTL ms, ARGV[3] 'own' when a companion
-- may hold the session's own idle TTL or '0' (the configuration has login limits; the
-- value is read only then).
-- Reply: {'missing'} | {'wrongtype', type} | {'ok', json} | {'ok', field, value, ...}
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  return {'missing'}
end
local want = 'hash'
if ARGV[1] == 'json' then want = 'string' end
if kind ~= want then
  return {'wrongtype', kind}
end
local ttl = tonumber(ARGV[2])
if KEYS[2] then
  -- PTTL is -2 when the companion is gone, -1 when it lost its expiry, and 0 in its last
  -- millisecond: the session is over.
  local left = redis.call('PTTL', KEYS[2])
  if left <= 0 then
    return {'missing'}
  end
  -- Only with login limits may a companion hold an own idle TTL or no deadline ('0').
  local value = nil
  if ARGV[3] == 'own' then value = redis.call('GET', KEYS[2]) end
  if value == '0' then
    redis.call('PEXPIRE', KEYS[2], ttl)
  else
    local own = tonumber(value)
    if own and own > 1 then ttl = own end
    if left < ttl then ttl = left end
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
if want == 'string' then
  return {'ok', redis.call('GET', KEYS[1])}
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ok')
return reply
