-- Load-and-touch of a session that needs a check before its TTL may be reset: a hash
-- session (the type must be checked first, so that a key of another type is never
-- touched) and any session with an absolute lifetime (its idle TTL is capped by what is
-- left of the deadline key's TTL, so it dies at its deadline however active).
-- KEYS[1] session key, KEYS[2] deadline key (only with an absolute lifetime);
-- ARGV[1] codec, ARGV[2] idle TTL ms.
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
  -- PTTL is -2 when the deadline key is gone (expired or evicted), -1 when it lost its
  -- expiry, and 0 in its last millisecond: in every such case the session is over.
  local left = redis.call('PTTL', KEYS[2])
  if left <= 0 then
    return {'missing'}
  end
  if left < ttl then ttl = left end
end
redis.call('PEXPIRE', KEYS[1], ttl)
if want == 'string' then
  return {'ok', redis.call('GET', KEYS[1])}
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ok')
return reply
