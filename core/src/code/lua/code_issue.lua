-- Issues a verification code within the resend cooldown and the daily cap, atomically.
-- KEYS[1] code, KEYS[2] cooldown, KEYS[3] daily count, KEYS[4] wrong tries
-- ARGV[1] stored code, ARGV[2] code TTL ms, ARGV[3] cooldown ms (0: none),
-- ARGV[4] daily cap, ARGV[5] daily window ms
-- Reply: {0, 0} issued | {1, ms} cooldown | {2, ms} daily cap reached
local wait = redis.call('PTTL', KEYS[2])
if wait > 0 then
  return {1, wait}
end
local sent = tonumber(redis.call('GET', KEYS[3]) or '0')
if sent >= tonumber(ARGV[4]) then
  return {2, math.max(redis.call('PTTL', KEYS[3]), 1)}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[4])
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
end
if redis.call('INCR', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
end
return {0, 0}
