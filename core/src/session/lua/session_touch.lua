-- Load-and-touch of a session that needs a check before its TTL may be reset: a hash
-- session (the type must be checked first, so that a key of another type is never
-- touched) and any session that may have a companion key (its absolute deadline as TTL,
-- its own idle TTL as value): the idle TTL is capped by what is left of the deadline, so
-- the session dies at its deadline however active.
-- KEYS[1] session key, KEYS[2] companion key (optional);
-- ARGV[1] codec, ARGV[2] the configuration's idle TTL ms, ARGV[3] 'required' when every
-- session has a companion (a missing one means the session is over) or 'optional' when
-- only sessions whose login chose their expiry have one; ARGV[4] 'own' when a companion
-- may hold the session's own idle TTL (read only then).
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
  -- PTTL is -2 when the companion is gone (expired or evicted), -1 when it lost its
  -- expiry, and 0 in its last millisecond.
  local left = redis.call('PTTL', KEYS[2])
  if left == -2 and ARGV[3] == 'optional' then
    left = nil
  elseif left <= 0 then
    return {'missing'}
  end
  if left then
    if ARGV[4] == 'own' then
      local own = tonumber(redis.call('GET', KEYS[2]))
      if own and own > 1 then ttl = own end
    end
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
