-- Load-and-touch for sessions with an absolute lifetime: the idle TTL is capped by what is
-- left of the deadline key's TTL, so the session dies at its deadline however active.
-- A session without a deadline key (written by another service) only slides.
-- KEYS[1] session key, KEYS[2] deadline key; ARGV[1] codec, ARGV[2] idle TTL ms.
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
local left = redis.call('PTTL', KEYS[2])
if left > 0 and left < ttl then ttl = left end
redis.call('PEXPIRE', KEYS[1], ttl)
if want == 'string' then
  return {'ok', redis.call('GET', KEYS[1])}
end
local reply = redis.call('HGETALL', KEYS[1])
table.insert(reply, 1, 'ok')
return reply
