-- Moves a session to a new key (token rotation), with its companion key, atomically: a
-- concurrent load finds it under exactly one of the two names. TTLs move with the keys.
-- KEYS[1] old session key, KEYS[2] new session key, KEYS[3] old companion, KEYS[4] new
-- companion (both optional). All in one hash slot. With a companion, a session whose
-- companion is gone is over, and is not moved.
-- Reply: 0 the old session is gone, 2 the new key exists (nothing moved), or {1, the new
-- companion's PTTL} when moved: -2 without a companion or when it holds no deadline ('0').
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 0 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 2
end
redis.call('RENAME', KEYS[1], KEYS[2])
local left = -2
if KEYS[3] then
  redis.call('RENAME', KEYS[3], KEYS[4])
  if redis.call('GET', KEYS[4]) ~= '0' then
    left = redis.call('PTTL', KEYS[4])
  end
end
return {1, left}
